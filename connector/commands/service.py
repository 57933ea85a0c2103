"""``connector run`` (the service), ``connector sync`` (one cycle), ``connector retry``."""

from __future__ import annotations

import argparse
from typing import Any

from connector.cli import Context, parse_uuid
from connector.instance_lock import InstanceLock


def register(commands: Any) -> None:
    run = commands.add_parser("run", help="run the sync service (scheduler, outbox, HTTP API)")
    run.set_defaults(handler=run_service)

    sync = commands.add_parser("sync", help="run exactly one sync cycle and exit")
    sync.add_argument("--full", action="store_true", help="reconcile every tracked meeting")
    sync.set_defaults(handler=run_sync)

    retry = commands.add_parser("retry", help="re-queue parked and failed messages and send them")
    retry.add_argument("activity", nargs="?", type=parse_uuid, metavar="ACTIVITY_ID")
    retry.set_defaults(handler=run_retry)

    discard = commands.add_parser(
        "discard",
        help="give up parked messages for good, so the later messages of their meeting can go",
    )
    discard.add_argument("messages", nargs="+", type=int, metavar="MESSAGE_ID")
    discard.set_defaults(handler=run_discard)


def run_service(args: argparse.Namespace, ctx: Context) -> int:
    from connector.runner import Runner, wait_for_signal

    lock = InstanceLock(ctx.config.state.url)
    lock.acquire()
    try:
        server = None
        if ctx.config.api.enabled:  # the HTTP API beside the scheduler (issue 5)
            from connector.api import server_for

            server = server_for(ctx.app)
            server.start()
        runner = Runner(ctx.app)
        runner.start()

        def stop() -> None:
            if server is not None:
                server.stop()  # no new requests; the ones in flight finish
            runner.stop()

        wait_for_signal(stop, extra=server.finished if server is not None else None)
    finally:
        lock.release()
    if server is not None and server.failed:
        ctx.err.write(ctx.t("server_died") + "\n")
        return 1
    return 0


def run_sync(args: argparse.Namespace, ctx: Context) -> int:
    from connector.sync import POLLER_LEASE, SyncService

    lock = InstanceLock(ctx.config.state.url)
    lock.acquire()
    try:
        report = SyncService(ctx.app).cycle(full=args.full)
    finally:
        # one cycle and out: the next `connector sync` (cron) is another process and must be
        # able to lead at once, not wait for this one's lease to expire
        ctx.app.store.release_lease(POLLER_LEASE, ctx.app.worker)
        lock.release()
    sent = sum(d.status == "sent" for d in report.deliveries)
    # "lost": another worker took the message over and sends it; not a failure of this run
    failed = [d for d in report.deliveries if d.status not in ("sent", "lost")]
    ctx.print(
        f"examined={report.examined} updated={report.updated} messages={report.messages} "
        f"sent={sent} failed={len(failed)} problems={report.problems} "
        f"full={str(report.full).lower()} seconds={report.seconds:.3f}"
    )
    return 4 if failed else 0


def run_retry(args: argparse.Namespace, ctx: Context) -> int:
    app = ctx.app
    count = app.store.requeue(app.clock(), activity_id=args.activity, statuses=("parked", "failed"))
    results = (
        app.deliverer.deliver_activity(args.activity) if args.activity else app.deliverer.drain()
    )
    sent = sum(r.status == "sent" for r in results)
    failed = sum(r.status not in ("sent", "lost") for r in results)
    ctx.print(f"requeued={count} sent={sent} failed={failed}")
    return 4 if failed else 0


def run_discard(args: argparse.Namespace, ctx: Context) -> int:
    app = ctx.app
    done = app.store.discard(args.messages, app.clock())
    left = sorted(set(args.messages) - set(done))
    ctx.print(
        f"discarded={','.join(map(str, done)) or '-'} "
        f"not_parked_or_failed={','.join(map(str, left)) or '-'}"
    )
    if done:
        app.deliverer.drain()  # what the discarded messages held back can go now
    return 0 if len(done) == len(set(args.messages)) else 2
