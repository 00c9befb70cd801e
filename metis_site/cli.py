"""The `metis` command line.

    metis serve   [--host H] [--port 8421]      admin, dashboard, analytics API, and the
                  [--gateway-port 8422]         gateway as a child process
                  [--no-gateway]                (METIS_SERVE_GATEWAY=0: the admin alone)
    metis gateway [--host H] [--port 8422]      the LLM gateway
                  [--workers 1]                 processes serving its port (>1 needs REDIS_URL)
    metis gateway issue-key --name N --workspace PATH [--user U] [--team T]
                            [--models m1,m2] [--expires 30d]
                            [--drop-unsupported-params | --refuse-unsupported-params]
    metis gateway revoke-key KEY_ID | rotate-key KEY_ID | list-keys
    metis chat [--url URL] [--token gw_…]       a terminal chat on metis serve's sessions
               [--resume SESSION_ID]
    metis createadmin [--username admin]
    metis mock-provider [--port 8423]
    metis demo [--calls 300]                    sample teams, keys and traffic
    metis manage <django command> …

User errors print one line on stderr and exit non-zero; never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import re
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta

from metis_site import chat as chat_command

DEFAULT_HOST = "127.0.0.1"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class CommandError(Exception):
    """A mistake the user can fix; printed as one line."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not hasattr(args, "handler"):
        build_parser().print_help()
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis_site.settings")
    os.environ["METIS_ROLE"] = getattr(args, "role", "serve")
    # Only `metis serve` decides local mode (run_serve); never inherited by anything else.
    os.environ.pop("METIS_LOCAL_MODE", None)
    try:
        return args.handler(args) or 0
    except CommandError as exc:
        print(f"metis: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metis", description="Metis, the LLM API gateway.")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the admin, dashboard and API, and the gateway")
    add_bind_arguments(serve, port=8421)
    serve.add_argument("--gateway-port", type=int, default=8422, help="the gateway's port (8422)")
    serve.add_argument(
        "--no-gateway",
        action="store_true",
        help="do not start the gateway (also METIS_SERVE_GATEWAY=0); run it with 'metis gateway'",
    )
    serve.set_defaults(handler=run_serve, role="serve")

    gateway = commands.add_parser("gateway", help="run the gateway, or manage its keys")
    add_bind_arguments(gateway, port=8422)
    gateway.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes serving the port (1); more than one needs REDIS_URL",
    )
    gateway.set_defaults(handler=run_gateway, role="gateway")
    key_commands = gateway.add_subparsers(title="key commands", metavar="KEY_COMMAND")

    issue = key_commands.add_parser("issue-key", help="issue a gateway key; prints its token once")
    issue.add_argument("--name", required=True)
    issue.add_argument("--workspace", required=True, help="the project path the key is for")
    issue.add_argument("--user", help="username of the key's owner")
    issue.add_argument("--team", help="team name")
    issue.add_argument("--models", help="comma-separated models the key may use (default: all)")
    issue.add_argument("--expires", help="lifetime like 30d, 12h, 2w, or a date (YYYY-MM-DD)")
    drop = issue.add_mutually_exclusive_group()
    drop.add_argument(
        "--drop-unsupported-params",
        dest="drop_unsupported_params",
        action="store_const",
        const=True,
        help="cross-shape fields with no equivalent (seed, logprobs, n>1, ...) are dropped "
        "and listed in x-metis-dropped-params (default: as the workspace says)",
    )
    drop.add_argument(
        "--refuse-unsupported-params",
        dest="drop_unsupported_params",
        action="store_const",
        const=False,
        help="such fields are refused with a 400, whatever the workspace says",
    )
    issue.set_defaults(handler=issue_key, role="cli")

    for name, handler, help_text in [
        ("revoke-key", revoke_key, "revoke a key; it stops working at once"),
        ("rotate-key", rotate_key, "give a key a new token; the old token stops working"),
    ]:
        sub = key_commands.add_parser(name, help=help_text)
        sub.add_argument("key_id", metavar="KEY_ID")
        sub.set_defaults(handler=handler, role="cli")
    key_commands.add_parser("list-keys", help="list gateway keys").set_defaults(
        handler=list_keys, role="cli"
    )

    chat = commands.add_parser("chat", help="chat in the terminal, on metis serve's sessions")
    chat_command.add_arguments(chat)
    chat.set_defaults(handler=run_chat, role="cli")

    admin = commands.add_parser("createadmin", help="create an admin user with a new password")
    admin.add_argument("--username", default="admin")
    admin.set_defaults(handler=create_admin, role="cli")

    mock = commands.add_parser("mock-provider", help="run the built-in mock LLM provider")
    add_bind_arguments(mock, port=8423)
    mock.add_argument("--token-delay", type=float, default=0.02, help="seconds between tokens")
    mock.add_argument("--fixed", action="store_true", help="precomputed replies (benchmarks)")
    mock.set_defaults(handler=run_mock_provider, role="cli")

    demo = commands.add_parser("demo", help="fill the database with sample teams, keys and calls")
    demo.add_argument("--calls", type=int, default=300, help="calls to send (300)")
    demo.set_defaults(handler=run_demo, role="cli")

    writer = commands.add_parser("write-events", help="the event writer 'metis gateway' runs")
    writer.set_defaults(handler=run_event_writer, role="writer")

    manage = commands.add_parser("manage", help="run a Django management command")
    manage.add_argument("arguments", nargs=argparse.REMAINDER)
    manage.set_defaults(handler=run_manage, role="cli")
    return parser


def add_bind_arguments(parser: argparse.ArgumentParser, *, port: int) -> None:
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"bind address ({DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=port, help=f"port ({port})")


# -- setup --------------------------------------------------------------------------


def setup_django(*, migrate: bool = True) -> None:
    import django
    from django.core.exceptions import ImproperlyConfigured

    try:
        django.setup()
        from identity import encryption

        encryption.check_keys()  # a bad METIS_ENCRYPTION_KEY fails at start, not mid-request
    except ImproperlyConfigured as exc:
        raise CommandError(str(exc)) from None
    if migrate:
        with home_lock():
            migrate_if_needed()


@contextlib.contextmanager
def home_lock() -> Iterator[None]:
    """One process at a time through first-start work (migrations, the first admin):
    two `metis serve` started together on a fresh METIS_HOME would both migrate."""
    import fcntl

    from django.conf import settings

    try:
        settings.METIS_HOME.mkdir(parents=True, exist_ok=True)
        lock = open(settings.METIS_HOME / "start.lock", "a")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise CommandError(
            f"METIS_HOME ({settings.METIS_HOME}) must be a directory Metis can write: "
            f"{exc.strerror}"
        ) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def migrate_if_needed() -> None:
    """Apply pending migrations, so a newcomer never has to run a separate step."""
    from django.core.management import call_command
    from django.db import DatabaseError, connection
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        raise CommandError(f"cannot open the database: {exc}") from None
    if pending:
        print(f"metis: applying {len(pending)} database migration(s)…", file=sys.stderr)
        call_command("migrate", interactive=False, verbosity=0)


def check_port_free(host: str, port: int, *, flag: str = "--port") -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CommandError(
                    f"port {port} on {host} is already in use (is Metis already running?);"
                    f" pick another with {flag}"
                ) from None
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def run_uvicorn(host: str, port: int, *, workers: int = 1) -> None:
    import signal

    import uvicorn
    from django.conf import settings

    from metis_site.server import HttpProtocol

    # uvicorn drains on SIGTERM, then re-raises it so the process dies by the signal
    # (exit status -15 / 143). A clean, drained shutdown exits 0 instead, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if workers > 1:
        from metis_site import servers

        servers.workers_stop_with_this_process()
    uvicorn.run(
        "metis_site.asgi:application",
        host=host,
        port=port,
        lifespan="on",
        access_log=False,
        log_level=settings.METIS_LOG_LEVEL.lower(),
        timeout_graceful_shutdown=30,
        http=HttpProtocol,  # closes connections whose headers trickle in (slowloris)
        # >1: uvicorn's supervisor, one socket shared by spawned workers, each with its own
        # lifespan (recovery, journal) and a replacement if it dies.
        workers=workers,
    )


# -- processes ----------------------------------------------------------------------


def run_serve(args: argparse.Namespace) -> int:
    from metis_site import servers

    check_port_free(args.host, args.port)
    off = os.environ.get("METIS_SERVE_GATEWAY", "").lower() in ("0", "false", "no", "off")
    with_gateway = not (args.no_gateway or off)
    if with_gateway:
        if args.gateway_port == args.port:
            raise CommandError("--gateway-port must differ from --port")
        check_port_free(args.host, args.gateway_port, flag="--gateway-port")
    # Local mode (analytics and dashboard without login) only on loopback, and never when
    # METIS_REQUIRE_LOGIN is set: bound anywhere else, every request needs a login.
    require_login = os.environ.get("METIS_REQUIRE_LOGIN", "").lower() in ("1", "true", "yes", "on")
    local = args.host in LOOPBACK and not require_login
    os.environ["METIS_LOCAL_MODE"] = "1" if local else "0"
    setup_django()
    with home_lock():
        ensure_first_admin()
    from analytics import cache_alerts, retention

    retention.schedule()  # daily, when METIS_EVENT_RETENTION_DAYS is set
    cache_alerts.schedule(webhook_urls)  # a key whose prompt-cache hit rate fell
    from reconcile import schedule as reconciliation

    reconciliation.schedule()  # daily, when an admin key is configured
    print(f"metis: admin and dashboard on http://{display_host(args.host)}:{args.port}/admin/")
    warn_without_tls(args.host, "passwords and session cookies")
    if not local:
        print(
            "metis: sign-in required for the dashboard and analytics API (not local mode):"
            f" http://{display_host(args.host)}:{args.port}/login/"
        )
    if not with_gateway:
        run_uvicorn(args.host, args.port)
        return 0
    gateway = servers.GatewayChild(args.host, args.gateway_port)
    with gateway, contextlib.suppress(SystemExit):  # run_uvicorn's exit after a SIGTERM
        run_uvicorn(args.host, args.port)
    return 1 if gateway.died is not None else 0


def webhook_urls() -> list[str]:
    """The operator's webhooks (the admin's Budget webhooks), read at each alert."""
    from gateway.models import BudgetWebhook

    return list(BudgetWebhook.objects.filter(is_active=True).values_list("url", flat=True))


def run_gateway(args: argparse.Namespace) -> int:
    from metis_site import servers

    servers.stop_with_parent()
    if problem := servers.workers_problem(args.workers):
        raise CommandError(problem)
    check_port_free(args.host, args.port)
    setup_django()
    workers = f" ({args.workers} workers)" if args.workers > 1 else ""
    print(f"metis: gateway on http://{display_host(args.host)}:{args.port}{workers}")
    warn_without_tls(args.host, "tokens, prompts and answers")
    from django.conf import settings

    writing = (
        servers.WriterProcess() if settings.METIS_EVENT_WRITER_PROCESS else contextlib.nullcontext()
    )
    with writing:
        run_uvicorn(args.host, args.port, workers=args.workers)
    return 0


def run_event_writer(args: argparse.Namespace) -> int:
    from metis_site import servers

    servers.stop_with_parent()  # SIGTERM: it writes what is left, then exits
    setup_django(migrate=False)
    from gateway import writer_process

    return writer_process.run()


def run_mock_provider(args: argparse.Namespace) -> int:
    import mock_provider as mock

    check_port_free(args.host, args.port)
    mock.run(args.host, args.port, token_delay=args.token_delay, fixed=args.fixed)
    return 0


def run_chat(args: argparse.Namespace) -> int:
    from metis_site.chat.api import ChatError

    try:
        return chat_command.run(args)
    except ChatError as exc:
        raise CommandError(str(exc)) from None


def run_demo(args: argparse.Namespace) -> int:
    setup_django()
    from metis_site import demo

    if args.calls < 1:
        raise CommandError("--calls must be at least 1")
    try:
        demo.run(calls=args.calls)
    except RuntimeError as exc:
        raise CommandError(str(exc)) from None
    return 0


def run_manage(args: argparse.Namespace) -> int:
    from django.core.management import execute_from_command_line

    setup_django(migrate=False)
    execute_from_command_line(["metis manage", *args.arguments])
    return 0


def warn_without_tls(host: str, what: str) -> None:
    if host not in LOOPBACK:
        print(
            f"metis: warning: listening beyond loopback on plain HTTP; {what} travel in clear"
            " text: put TLS in front (docs/deployment.md)",
            file=sys.stderr,
        )


def display_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# -- admin users --------------------------------------------------------------------


def ensure_first_admin() -> None:
    """On the very first start, make an admin so the console can be opened at once.
    Created, never updated: a second process starting at the same moment (another machine
    on the same PostgreSQL) gets the unique username's IntegrityError and prints nothing,
    so the one password printed is the one that works."""
    import secrets

    from django.db import IntegrityError, transaction

    from identity.models import User

    if User.objects.filter(is_superuser=True).exists():
        return
    password = secrets.token_urlsafe(12)
    try:
        with transaction.atomic():
            User.objects.create_superuser("admin", password=password)
    except IntegrityError:
        if not User.objects.filter(is_superuser=True).exists():
            print("metis: a user 'admin' exists but no admin; run 'metis createadmin'")
        return
    print(
        "metis: created the admin user 'admin' with password "
        f"{password}\n       (shown once; change it in the admin, or run "
        "'metis createadmin' for a new one)",
        flush=True,
    )


def create_admin(args: argparse.Namespace) -> int:
    setup_django()
    password = make_admin(args.username)
    print(f"username: {args.username}\npassword: {password}")
    return 0


def make_admin(username: str) -> str:
    import secrets

    from identity.models import User

    password = secrets.token_urlsafe(12)
    user, _ = User.objects.get_or_create(username=username)
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    return password


# -- keys ---------------------------------------------------------------------------


def issue_key(args: argparse.Namespace) -> int:
    setup_django()
    from django.core.exceptions import ValidationError

    from identity.models import GatewayKey, Team, User, Workspace

    name = args.name.strip()
    if not name:
        raise CommandError("--name must not be empty")
    expires_at = parse_expires(args.expires) if args.expires else None
    user = lookup(User, "username", args.user, "user") if args.user else None
    team = lookup(Team, "name", args.team, "team") if args.team else None
    models = [m.strip() for m in (args.models or "").split(",") if m.strip()]
    if args.models is not None and not models:
        raise CommandError("--models needs at least one model name (omit it to allow all)")
    if GatewayKey.objects.filter(name=name, revoked_at__isnull=True).exists():
        raise CommandError(f"a live key named {name!r} already exists; choose another --name")
    try:
        key, token = GatewayKey.issue(
            name=name,
            workspace=Workspace.for_path(args.workspace),
            user=user,
            team=team,
            allowed_models=models,
            expires_at=expires_at,
            drop_unsupported_params=args.drop_unsupported_params,
        )
    except ValidationError as exc:
        raise CommandError("; ".join(exc.messages)) from None
    print(f"key_id: {key.id}")
    print(f"token: {token}")
    print("metis: save the token now; only its hash is stored", file=sys.stderr)
    return 0


def revoke_key(args: argparse.Namespace) -> int:
    key = find_key(args.key_id)
    key.revoke()
    print(f"revoked: {key.id}")
    return 0


def rotate_key(args: argparse.Namespace) -> int:
    key = find_key(args.key_id)
    if key.status != key.Status.ACTIVE:
        raise CommandError(f"key {key.id} is {key.status.value}; only active keys can be rotated")
    token = key.rotate()
    print(f"key_id: {key.id}")
    print(f"token: {token}")
    print("metis: the old token no longer works; save the new one now", file=sys.stderr)
    return 0


def list_keys(args: argparse.Namespace) -> int:
    setup_django()
    from identity.models import GatewayKey

    rows = GatewayKey.objects.select_related("user", "team", "workspace").order_by("-id")
    print(f"{'KEY_ID':<30} {'NAME':<24} {'STATUS':<8} {'USER':<14} {'TEAM':<14} WORKSPACE")
    for key in rows:
        user = key.user.username if key.user else "-"
        team = key.team.name if key.team else "-"
        print(
            f"{key.id:<30} {key.name:<24} {key.status.value:<8} {user:<14} {team:<14} "
            f"{key.workspace.path}"
        )
    return 0


def find_key(key_id: str):  # -> GatewayKey
    setup_django()
    from identity.models import GatewayKey

    try:
        return GatewayKey.objects.get(pk=key_id)
    except GatewayKey.DoesNotExist:
        raise CommandError(f"no gateway key {key_id!r} (see 'metis gateway list-keys')") from None


def lookup(model: type, field: str, value: str, what: str):
    try:
        return model.objects.get(**{field: value})
    except model.DoesNotExist:
        raise CommandError(
            f"no {what} {value!r}; create it in the admin (metis serve → /admin/) first"
        ) from None


DURATION = re.compile(r"^(\d+)\s*([mhdw])$")
UNITS: dict[str, Callable[[int], timedelta]] = {
    "m": lambda n: timedelta(minutes=n),
    "h": lambda n: timedelta(hours=n),
    "d": lambda n: timedelta(days=n),
    "w": lambda n: timedelta(weeks=n),
}


def parse_expires(value: str) -> datetime:
    from django.utils import timezone

    text = value.strip().lower()
    if match := DURATION.match(text):
        amount = int(match.group(1))
        if amount <= 0:
            raise CommandError(f"--expires must be in the future, got {value!r}")
        try:
            return timezone.now() + UNITS[match.group(2)](amount)
        except OverflowError:
            raise CommandError(f"--expires {value!r} is too far in the future") from None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise CommandError(
            f"--expires must look like 30d, 12h, 90m, 2w or 2027-01-31, got {value!r}"
        ) from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_default_timezone())
    if moment <= timezone.now():
        raise CommandError(f"--expires {value!r} is in the past")
    return moment


if __name__ == "__main__":
    sys.exit(main())
