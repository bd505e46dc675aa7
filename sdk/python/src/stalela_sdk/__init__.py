"""stalela-sdk. (Placeholder from the offline sealer's branch: the SDK branch's own ``__init__`` replaces it.)"""
