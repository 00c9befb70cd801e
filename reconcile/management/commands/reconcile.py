"""`metis manage reconcile [--since DATE] [--until DATE]`: import the providers' reports and
compare them with what Metis recorded, now."""

from __future__ import annotations

from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError

from analytics.writer import writer
from reconcile import imports, sources
from reconcile.compare import drift_percent


def parse_day(text: str, flag: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(f"{flag} must be a date like 2026-11-01, got {text!r}") from None


class Command(BaseCommand):
    help = (
        "Read the Anthropic and OpenAI organisation usage and cost reports (admin keys) for "
        "whole UTC days and compare them with Metis's own figures. Default: the last 3 days."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--since", metavar="DATE", help="first UTC day, e.g. 2026-11-01")
        parser.add_argument("--until", metavar="DATE", help="last UTC day (default today)")

    def handle(self, *args: object, since: str | None, until: str | None, **options) -> None:
        first = parse_day(since, "--since") if since else None
        last = parse_day(until, "--until") + timedelta(days=1) if until else None
        if first and last and first >= last:
            raise CommandError("--since must not be after --until")
        if first and first > imports.today():
            raise CommandError("--since is in the future")
        if not sources.sources():
            raise CommandError(
                "no admin key: set METIS_ANTHROPIC_ADMIN_KEY / METIS_OPENAI_ADMIN_KEY, or an "
                "admin key on a provider credential (admin → Provider credentials)"
            )
        outcome = imports.run(first, last)
        writer.flush()
        for error in outcome.errors:
            self.stderr.write(f"not read: {error}")
        self.stdout.write(
            f"reconciled {outcome.since} to {outcome.until - timedelta(days=1)}: "
            f"{outcome.reports} reports, {outcome.rows} provider rows"
        )
        for r in outcome.results:
            percent = drift_percent(r.drift_usd, r.provider_cost_usd, r.gateway_cost_usd)
            provider_cost = "—" if r.provider_cost_usd is None else f"${r.provider_cost_usd}"
            self.stdout.write(
                f"{r.day} {r.upstream:<12} {r.model:<28} gateway ${r.gateway_cost_usd} "
                f"provider {provider_cost} drift ${r.drift_usd} ({percent}%) "
                f"bypass {r.bypass_tokens} unreported {r.unreported_tokens} tokens"
            )
        if outcome.errors and not outcome.reports:
            raise CommandError("no report could be read")
