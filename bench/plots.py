"""PNG plots from the result files (matplotlib, the optional ``bench`` dependency group)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _machine(data: dict[str, Any]) -> str:
    m = data.get("machine", {})
    return (
        f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, Python {m.get('python', '?')}, "
        f"PostgreSQL {m.get('postgresql', '?')} ({data.get('mode', '?')} mode)"
    )


def draw_all(results: dict[str, dict[str, Any]], out: Path) -> list[Path]:
    drawn = []
    for name, draw in (
        ("sync_cost", sync_cycle_plot),
        ("build_cost", build_cost_plot),
        ("throughput", throughput_plot),
        ("latency", latency_plot),
    ):
        data = results.get(name)
        if data and not data.get("error") and data.get("results"):
            try:
                drawn.append(draw(data, out))
            except (KeyError, TypeError, ValueError) as exc:  # a result file of an older shape
                print(f"plot of {name} skipped: {type(exc).__name__}: {exc}")
    return drawn


def _series(
    data: dict[str, Any], kind: str, changed: int, indexes: bool
) -> tuple[list[int], list[float], list[float]]:
    sizes: list[int] = []
    seconds: list[float] = []
    crm: list[float] = []
    for row in data["results"]:
        for s in row["scenarios"]:
            if s["kind"] == kind and s["changed"] == changed and s["indexes"] == indexes:
                sizes.append(row["activities"])
                seconds.append(s["seconds"] * 1000)
                crm.append(s["median_run"]["crm_seconds"] * 1000)
    return sizes, seconds, crm


def sync_cycle_plot(data: dict[str, Any], out: Path) -> Path:
    """Cycle time and time spent in CRM queries against the number of activities."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    combos = []
    for row in data["results"]:
        for s in row["scenarios"]:
            key = (s["kind"], s["changed"], s["indexes"])
            if key not in combos and s["kind"] != "next_cycle":
                combos.append(key)
    for kind, changed, indexes in combos:
        sizes, seconds, crm = _series(data, kind, changed, indexes)
        label = "full reconcile" if kind == "full_reconcile" else f"{changed} changed"
        label += "" if indexes else " (no indexes)"
        style = "-o" if indexes else "--x"
        left.plot(sizes, seconds, style, label=label)
        right.plot(sizes, crm, style, label=label)
    tracked = data.get("parameters", {}).get("tracked_meetings")
    left.set_title(f"One sync cycle ({tracked:,} tracked meetings)" if tracked else "One cycle")
    left.set_ylabel("cycle time, ms")
    right.set_title("Time in CRM queries during that cycle")
    right.set_ylabel("ms")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("activities in the CRM (about 5 participants each)")
        ax.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(_machine(data), fontsize=8)
    fig.tight_layout()
    path = out / "sync_cycle.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def build_cost_plot(data: dict[str, Any], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 5))
    sizes = [r["attendees"] for r in data["results"]]
    batched = [r["batched"]["seconds_per_build"] * 1000 for r in data["results"]]
    naive = [r["naive"]["seconds_per_meeting"] * 1000 for r in data["results"]]
    ax.plot(sizes, batched, "-o", label="one message for everybody (the connector)")
    ax.plot(sizes, naive, "--x", label="one message per recipient (naive)")
    for x, y, r in zip(sizes, naive, data["results"], strict=True):
        ax.annotate(
            f"{r['ratio']:.1f}x", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("attendees")
    ax.set_ylabel("ms to build the invitations of one meeting (one core)")
    ax.set_title("Build cost: planner + body + iCalendar + MIME")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(_machine(data), fontsize=8)
    fig.tight_layout()
    path = out / "build_cost.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def throughput_plot(data: dict[str, Any], out: Path) -> Path:
    """Messages per second against Graph latency, one line per mailbox count, one panel per
    way of running the deliverer; dotted: what a perfect client could do in the same run."""
    kinds = list(dict.fromkeys(r["threads_kind"] for r in data["results"]))
    columns = min(len(kinds), 2)
    rows = (len(kinds) + columns - 1) // columns
    fig, grid = plt.subplots(
        rows, columns, figsize=(max(7.0, 6.0 * columns), 4.8 * rows + 0.6), squeeze=False
    )
    axes = [ax for row in grid for ax in row]
    for ax in axes[len(kinds) :]:
        ax.set_visible(False)
    names = {
        "1": "1 thread (connector sync)",
        "9": "9 threads (connector run)",
        "pool": "pool: 4 threads per mailbox (max 32)",
        "pool-pg": "the same pool, PostgreSQL outbox",
    }
    top = max(r["ideal_messages_per_second"] for r in data["results"]) * 1.5
    for ax, kind in zip(axes, kinds, strict=False):
        by_mailboxes: dict[int, list[dict[str, Any]]] = {}
        for r in data["results"]:
            if r["threads_kind"] == kind:
                by_mailboxes.setdefault(r["mailboxes"], []).append(r)
        for count, rows in sorted(by_mailboxes.items()):
            rows.sort(key=lambda r: r["latency_ms"])
            x = [r["latency_ms"] for r in rows]
            line = ax.plot(
                x,
                [max(r["messages_per_second"], 0.1) for r in rows],
                "-o",
                label=f"{count} mailbox{'es' if count > 1 else ''}",
            )
            ax.plot(
                x,
                [r["ideal_messages_per_second"] for r in rows],
                ":",
                color=line[0].get_color(),
            )
        ax.set_yscale("log")
        ax.set_ylim(0.5, top)
        ax.set_xlabel("Graph latency per request, ms")
        ax.set_ylabel("messages per second accepted")
        ax.set_title(names.get(kind, kind), fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, title="dotted: perfect client", title_fontsize=7)
    window = data.get("parameters", {}).get("window_seconds", "?")
    fig.suptitle(
        f"Delivery through the fake Graph: 4 concurrent and 30 per {window:g} s per mailbox\n"
        f"(Exchange's 60 s window scaled down); {_machine(data)}",
        fontsize=8,
    )
    fig.tight_layout()
    path = out / "throughput.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def latency_plot(data: dict[str, Any], out: Path) -> Path:
    row = data["results"][0]
    values = sorted(row["latencies"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    fractions = [(i + 1) / len(values) for i in range(len(values))]
    line = ax.step(values, fractions, where="post", label="measured (edit -> file written)")
    ax.axvline(
        row["latency_seconds"]["mean"],
        color=line[0].get_color(),
        linestyle="-.",
        alpha=0.6,
        label="measured mean",
    )
    ax.axvline(
        row["expected"]["mean_seconds"],
        color="gray",
        linestyle="--",
        label="expected mean (interval/2 + cycle)",
    )
    ax.axvline(
        row["expected"]["max_seconds"],
        color="red",
        linestyle=":",
        label="expected max (interval + cycle)",
    )
    ax.set_xlabel("seconds from the CRM edit to the update leaving the connector")
    ax.set_ylabel("fraction of edits")
    ax.set_title(
        f"connector run, interval {row['interval_seconds']:g} s, {row['updates_seen']} edits"
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(_machine(data), fontsize=8)
    fig.tight_layout()
    path = out / "latency.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
