"""Drift to the digit: a reconciliation is read for its small differences, which the
dashboard's cent-rounded money would hide ("<$0.01")."""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def drift(value: Decimal | None) -> str:
    """+$0.000267, −$1.20, $0 (six decimals at most, trailing zeros dropped)."""
    if value is None:
        return "—"
    if not value:
        return "$0"
    digits = abs(value).quantize(Decimal("0.000001"))
    text = format(digits.normalize(), "f") if digits else "0.000001"
    if digits and "." in text and len(text.split(".")[1]) == 1:
        text += "0"
    sign = "+" if value > 0 else "−"
    return f"{sign}{'<' if not digits else ''}${text}"
