"""Statutory retention floors, as data: how long each jurisdiction's law keeps fiscal documents.

A floor is counted from the END OF THE FINANCIAL YEAR of the document's date (the calendar year unless
the law or the tenant says otherwise), never from its creation: an invoice of 3 January and one of
30 December of the same year end their retention on the same day. Tenants may keep longer (their
``fiscal`` policy), never shorter; a law that raises its floor later wins over a policy saved under the
old one (``retention_rules.retain_until`` takes the larger of the two).

Sources are summarised in the team's reference notes (billing-privacy.md, part B.2). Where the notes
say "(confirm)", the figure is the one commonly cited and is kept here with its citation, so that a
correction is a one-line change reviewed with its source.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StatutoryFloor:
    jurisdiction: str
    years: int
    citation: str
    covers: str
    # The last month of the financial year the period is counted from (12: the calendar year).
    year_end_month: int = 12
    note: str = ""
    # A jurisdiction Stalela does not serve yet: kept as data so adding it is not a research task.
    served: bool = True

    @property
    def counted_from(self) -> str:
        return "end of the financial year" + (" (calendar year)" if self.year_end_month == 12 else "")


FLOORS: dict[str, StatutoryFloor] = {f.jurisdiction: f for f in (
    StatutoryFloor(
        "CD", 10, "OHADA AUDCIF (2017) art. 24",
        "books, documents and supporting vouchers (pièces justificatives), invoices included",
        note="The DRC applies the OHADA Uniform Acts since 12 Sep 2012; no DGI-specific e-invoice period is "
             "published, so the OHADA accounting period is the floor."),
    StatutoryFloor(
        "AR", 10, "CCyC art. 328; Decreto 1397/79 art. 48",
        "books and supporting instruments (comprobantes)",
        note="Decreto 1397/79 keeps comprobantes until 5 years after the tax period's prescription (itself 5 "
             "years for registered taxpayers); a suspended or interrupted prescription is a legal hold."),
    StatutoryFloor(
        "DE", 8, "§147(3) AO, §14b(1) UStG (since 1 Jan 2025, BEG IV)",
        "invoices and booking vouchers (Buchungsbelege)", served=False,
        note="Books and annual accounts stay at 10 years; banks, insurers and securities firms keep invoices "
             "10 years (Art. 97 §19a(3) EGAO). Does not expire while relevant to an open assessment (a hold)."),
    StatutoryFloor(
        "FR", 10, "C. com. L123-22", "accounting documents and supporting vouchers", served=False,
        note="The tax period (LPF L102 B) is 6 years; the longer of the two applies."),
)}

# A jurisdiction without data here gets the longest floor known: keeping too long is the safe mistake.
LONGEST = max(FLOORS.values(), key=lambda f: f.years)


def floor_for(jurisdiction: str | None) -> StatutoryFloor:
    if jurisdiction in FLOORS:
        return FLOORS[jurisdiction]
    return StatutoryFloor(jurisdiction or "", LONGEST.years, f"none on record: the longest known ({LONGEST.citation})",
                          LONGEST.covers, served=False)


# The categories of the data map. ``fiscal`` data is never purged by the engine: its floor is the law's.
CATEGORIES = ("personal", "fiscal", "operational", "secret")
