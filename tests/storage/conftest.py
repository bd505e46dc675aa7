from tests.support.s3 import s3_server  # noqa: F401  (the fixture)
