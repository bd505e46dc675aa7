"""Error titles and details in French, Spanish and English; the ``code`` and ``field`` never change."""
from __future__ import annotations

import pytest

from stalela.i18n import LANGUAGES, SOURCE
from stalela.i18n.problem_codes import missing, source_codes, source_titles
from tests.support.invoices import sample_invoice


@pytest.fixture
def database_url(_sqlite_url) -> str:
    return _sqlite_url  # the language of an answer does not depend on the database


def test_the_extraction_finds_the_codes_of_every_kind():
    codes = source_codes()
    # Guards the extraction itself: were it to find little, the next test would pass vacuously.
    assert len(codes) > 250
    assert {
        "internal_error", "not_found",  # class defaults (errors.py)
        "invoice_not_found",  # code="…" arguments
        "invalid_tax_group", "buyer_tax_id_required", "goods_line_group_invalid",  # fiscal rules and their tables
        "quantity_precision",  # check_decimal's invalid_code/precision_code
        "certificate_expired",  # _refuse(field, code, detail)
        "webhook_url_not_https", "device_url_invalid",  # netguard's code_prefix × kind
        "doc_number_check_digit",  # code = "…" if … else "…"
        "no_device",  # row.error_code = "…"
        "required", "unknown_field", "method_not_allowed",  # tables of codes
    } <= codes
    assert "main" not in codes  # a series' code, not an error's
    assert {"Internal error", "Fiscal rule violated", "Method not allowed"} <= source_titles()


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != SOURCE])
def test_every_error_code_and_title_has_a_sentence(lang):
    gaps = missing(lang)
    assert not gaps, "\n".join(f"{m.context}: {m.msgid}" for m in gaps[:40]) + \
        f"\n({len(gaps)} missing; `make i18n AREA=errors` adds them to errors.po for translation)"


async def _outlet(client, new_tenant) -> tuple[str, dict[str, str]]:
    _, key = await new_tenant()
    r = await client.post("/v1/outlets", json={"code": "KIN1", "name": "Kinshasa"}, headers=key)
    assert r.status_code == 201, r.text
    return r.json()["id"], key


@pytest.mark.parametrize(("lang", "title", "detail"), [
    ("fr-CD,fr;q=0.9,en;q=0.5", "Règle fiscale non respectée", "Ce groupe de taxe n'existe pas."),
    ("es-AR", "Regla fiscal incumplida", "Este grupo impositivo no existe."),
])
async def test_a_fiscal_rule_in_the_readers_language(client, new_tenant, lang, title, detail):
    outlet, key = await _outlet(client, new_tenant)
    body = sample_invoice(outlet)
    body["lines"][0]["tax_group"] = "Z"
    english = await client.post("/v1/invoices", json=body, headers=key)
    r = await client.post("/v1/invoices", json=body, headers={**key, "Accept-Language": lang})
    assert r.status_code == english.status_code == 422
    problem, source = r.json(), english.json()
    assert r.headers["content-language"] == lang[:2]
    assert "accept-language" in r.headers["vary"].lower()
    assert (problem["title"], problem["detail"]) == (title, detail)
    assert problem["errors"][0]["detail"] == detail
    # What a client keys on is the same in every language.
    assert (problem["code"], problem["field"]) == (source["code"], source["field"]) == \
        ("invalid_tax_group", "lines[0].tax_group")
    assert problem["errors"][0]["code"] == source["errors"][0]["code"]
    assert problem["type"] == source["type"]
    # English is the source: unchanged, and labelled.
    assert english.headers["content-language"] == "en"
    assert source["title"] == "Fiscal rule violated" and source["detail"].startswith("'Z' is not one of")
    # The sentence names no value: the English detail, which does, travels beside it.
    assert problem["detail_en"] == source["detail"] and "detail_en" not in source


async def test_each_validation_entry_is_translated_with_its_values(client, new_tenant):
    _, key = await new_tenant()
    body = {"code": "X" * 40, "name": "", "colour": "red", "pos_number": 0}
    english = (await client.post("/v1/outlets", json=body, headers=key)).json()
    r = await client.post("/v1/outlets", json=body, headers={**key, "Accept-Language": "fr"})
    assert r.status_code == 422
    problem = r.json()
    by_field = {e["field"]: e for e in problem["errors"]}
    assert {f: e["code"] for f, e in by_field.items()} == {e["field"]: e["code"] for e in english["errors"]}
    assert by_field["code"]["detail"] == "au plus 32 caractères"
    assert by_field["name"]["detail"] == "au moins 1 caractère(s)"
    assert by_field["pos_number"]["detail"] == "doit valoir au moins 1"
    assert by_field["colour"] == {"field": "colour", "code": "unknown_field", "detail": "Ce champ n'est pas connu."}
    assert problem["title"] == "Données invalides"
    first = problem["errors"][0]
    assert problem["detail"] == f"{first['field']}: {first['detail']}"
    es = (await client.post("/v1/outlets", json=body, headers={**key, "Accept-Language": "es"})).json()
    assert {e["field"]: e["detail"] for e in es["errors"]}["code"] == "como máximo 32 caracteres"
    assert english["errors"][0]["detail"] != problem["errors"][0]["detail"]


async def test_framework_and_middleware_answers_follow_the_language_too(client):
    r = await client.get("/v1/no-such-route", headers={"Accept-Language": "es"})
    assert (r.status_code, r.json()["code"], r.json()["title"]) == (404, "not_found", "No encontrado")
    assert r.json()["detail"] == "Este recurso no existe."
    r = await client.get("/v1/outlets", headers={"Accept-Language": "fr"})
    assert (r.status_code, r.json()["code"]) == (401, "missing_credentials")
    assert r.json()["title"] == "Authentification requise"
    assert r.headers["www-authenticate"] == "Bearer"  # the error's own headers stay
    # Refused by the body guard before any route runs (observability/middleware.py).
    r = await client.post("/v1/outlets", content=b"code=X", headers={"Content-Type": "text/plain",
                                                                     "Accept-Language": "fr"})
    assert (r.status_code, r.json()["code"]) == (415, "unsupported_media_type")
    assert r.json()["detail"] == "Ce type de contenu n'est pas accepté : envoyez du JSON."
    assert r.headers["content-language"] == "fr"


@pytest.mark.parametrize(("header", "lang"), [("de-DE, es;q=0.4", "es"), ("de", "en"), ("", "en"),
                                              ("fr;q=0, es;q=0.1", "es")])
async def test_only_a_shipped_language_else_english(client, header, lang):
    r = await client.get("/v1/outlets", headers={"Accept-Language": header})
    assert r.status_code == 401
    assert r.headers["content-language"] == lang
    assert (r.json()["detail"] == "missing Authorization header") is (lang == "en")


async def test_a_batch_items_problem_in_the_readers_language(client, new_tenant):
    outlet, key = await _outlet(client, new_tenant)
    bad = sample_invoice(outlet, type="ZZ")
    r = await client.post("/v1/invoices/batch", headers={**key, "Accept-Language": "es"},
                          json={"items": [{"idempotency_key": "b-1", "invoice": sample_invoice(outlet)},
                                          {"idempotency_key": "b-2", "invoice": bad}]})
    assert r.status_code == 200, r.text
    ok, refused = r.json()["data"]
    assert ok["status"] == 201
    assert (refused["problem"]["code"], refused["problem"]["field"]) == ("invalid_invoice_type", "type")
    assert refused["problem"]["detail"] == "Este tipo de comprobante no existe."


def test_an_input_sentence_without_its_values_falls_back_to_the_codes():
    from stalela.errors import FieldError, ValidationFailed
    from stalela.i18n import localizer
    from stalela.kit.problems import localized_problem

    # kit/netguard.py raises pydantic's code itself, without pydantic's ctx.
    error = ValidationFailed("url: at most 2048 characters", field="url",
                             errors=[FieldError("url", "string_too_long", "at most 2048 characters")])
    body = localized_problem(error, localizer("fr"))
    assert body["errors"][0]["detail"] == "Ce texte est trop long."
    assert body["detail"] == "url: Ce texte est trop long."
    with_values = FieldError("name", "string_too_long", "String should have at most 9 characters",
                             values={"max_length": 9})
    assert localized_problem(ValidationFailed("x", errors=[with_values]), localizer("es"))["errors"][0]["detail"] \
        == "como máximo 9 caracteres"
