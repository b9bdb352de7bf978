"""The ``lightning-tracker`` command: list, show, compare and sync runs, write reports, serve.

This package is the only part of lightning_tracker that prints. The exit status follows
the error's type (:data:`~lightning_tracker.cli.failures.EXIT_STATUSES`): 0 when a command
did what was asked, 1 when a valid query matched nothing (``NothingMatchedError``) or the
store failed (one line naming the store, the cause and the fix), 2 for usage errors (a bad
argument, an unknown key, a run or project that does not exist), 3 when the store changed
while being read or could not be reached (``TransientStoreError``: run the command again).
``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import traceback
from collections.abc import Sequence

from rich.text import Text

from lightning_tracker._version import __version__
from lightning_tracker.cli.failures import EXIT_STATUS_HELP, exit_status
from lightning_tracker.cli.stores import OPTIONS_ENV, STORE_ENV
from lightning_tracker.cli.terminal import console_for, visible
from lightning_tracker.exceptions import NothingMatchedError, TrackerError
from lightning_tracker.storage import protocol_families
from lightning_tracker.storage.failures import as_tracker_error

__all__ = ["main"]

_STORE_HELP = f"folder or URL of the runs (default ${STORE_ENV} or ./runs)"
_CREDENTIAL_VARIABLES = "; ".join(f"{f.name}://: {f.credentials_env}" for f in protocol_families())


def _common(debug_default: object) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=debug_default, help="show tracebacks of errors")
    return common


def _store_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("-s", "--store", help=_STORE_HELP)
    p.add_argument("-p", "--project", help="only this project")
    p.add_argument(
        "--storage-options",
        metavar="JSON",
        help=f"fsspec options as JSON, such as credentials (or ${OPTIONS_ENV}); the backend's own "
        f"environment works too ({_CREDENTIAL_VARIABLES})",
    )
    return p


# each command: what it does (its --help's description, after the one-line summary) and examples
_DETAILS: dict[str, tuple[str, tuple[str, ...]]] = {
    "runs": (
        "Lists the runs of a project as a table: name, status, the hyperparameters that differ, the metrics "
        "(the monitored one first). A store with several projects lists its projects instead.",
        (
            "lightning-tracker runs                 # ./runs, or $LIGHTNING_TRACKER_STORE",
            "lightning-tracker runs -p demo --sort=-val/acc",
            "lightning-tracker runs -w 'lr<0.01' -w optimizer=adam -c lr,val/acc",
            "lightning-tracker runs -s s3://bucket/exp --status running",
            "lightning-tracker runs -p sweep --group-by lr,optimizer --sort=-val/acc",
        ),
    ),
    "show": (
        "Shows one run: its metadata, every hyperparameter, and a summary of each metric.",
        (
            "lightning-tracker show swift-otter-42",
            "lightning-tracker show 20261206-0317 -s s3://bucket/exp",
        ),
    ),
    "compare": (
        "Shows runs side by side: the hyperparameters that differ, then the last value of each metric.",
        (
            "lightning-tracker compare swift-otter-42 calm-heron-7",
            "lightning-tracker compare 20261206-03 20261206-04 20261206-05 --all",
        ),
    ),
    "hist": (
        "Draws a run's gradient and weight histograms as PNG heatmaps, one per tensor: steps across, values up.",
        (
            "lightning-tracker hist swift-otter-42",
            "lightning-tracker hist swift-otter-42 'layer1.*' --kind gradient --out plots",
        ),
    ),
    "report": (
        "Writes one HTML file holding the runs, their charts and media; it opens offline and can be mailed.",
        (
            "lightning-tracker report -p demo -o demo.html",
            "lightning-tracker report swift-otter-42 calm-heron-7 -o best.html",
            "lightning-tracker report -s s3://bucket/exp -o s3://bucket/r.html --share 7",
        ),
    ),
    "serve": (
        "Serves a live dashboard of the store, read-only, that updates while runs train. For a team, "
        "serve it on its own hostname behind a TLS proxy (the token travels in every request).",
        (
            "lightning-tracker serve ./runs",
            "lightning-tracker serve -s s3://bucket/exp --port 0 --refresh 10",
            "LIGHTNING_TRACKER_SERVE_TOKEN=$(openssl rand -hex 16) \\",
            "  lightning-tracker serve --host 0.0.0.0     # a team's dashboard",
        ),
    ),
    "sync": (
        "Uploads the runs a remote store has not received yet from the local spool: offline runs, and runs "
        "cut off by an outage or a crash. Safe to run twice or beside a live run; prints nothing when "
        "every run is already in its store.",
        (
            "lightning-tracker sync --list",
            "lightning-tracker sync",
            "lightning-tracker sync ~/.cache/lightning_tracker/spool/s3/bucket/exp/p/RUN_ID",
        ),
    ),
    "index": (
        "Rebuilds the index of a project (every project without -p) from its run folders. Runs table reads "
        "use the index, and the runs' writers keep it current; rebuild it for runs copied in by hand "
        "(aws s3 sync, cp) or a store written before the index existed.",
        (
            "lightning-tracker index -s ./runs",
            "lightning-tracker index -s s3://bucket/exp -p sweep",
        ),
    ),
    "sql": (
        "Runs a DuckDB query, in process, over two views of the store (or of -p PROJECT): runs (one row per run, "
        'as `runs` lists them: id, name, status, "config.<key>", "summary.<metric>", "min.<metric>", '
        '"max.<metric>") and metrics (every point: project, run, key, step, time, value). Needs the duckdb extra.',
        (
            "lightning-tracker sql 'select status, count(*) from runs group by 1'",
            "lightning-tracker sql -p demo \\",
            "  \"select run, min(value) from metrics where key = 'val/loss' group by 1\"",
            'lightning-tracker sql --csv \'select "config.lr", "summary.loss" from runs\'',
        ),
    ),
    "export": (
        "Writes a project's points and runs to Delta Lake tables, <URL>/points (partitioned by project and run) "
        "and <URL>/runs, for Spark, Trino, Databricks, Polars or DuckDB. Adds only runs not exported yet; a run "
        "that changed since its export is replaced, not doubled. Needs the delta extra.",
        (
            "lightning-tracker export delta -p demo -o ./delta",
            "lightning-tracker export delta -s s3://bucket/exp -p demo -o s3://bucket/delta",
        ),
    ),
    "tag": (
        "Adds (+TAG) and removes (-TAG) tags of runs after they ran, or while they run: every table, "
        "filter, report and dashboard shows them. The tag 's', 'p' or 'h' is removed with "
        "--remove-tag TAG (-s, -p and -h are options).",
        (
            "lightning-tracker tag swift-otter-42 +best -baseline",
            "lightning-tracker tag 20261206-03 20261206-04 +sweep-1 -s s3://bucket/exp",
        ),
    ),
    "note": (
        "Sets the note of a run ('' clears it); shown by show, the report and the dashboard.",
        ('lightning-tracker note swift-otter-42 "diverged after epoch 3; lr too high"',),
    ),
    "rename": (
        "Gives a run a new readable name; its id, and so its folder, stay.",
        ("lightning-tracker rename swift-otter-42 lr-0.1-rerun",),
    ),
    "archive": (
        "Archives runs: runs, the report and the dashboard leave them out unless asked "
        "(runs --archived lists only them, --include-archived lists them too). Nothing is deleted.",
        ("lightning-tracker archive swift-otter-42 calm-heron-7",),
    ),
    "unarchive": (
        "Brings archived runs back into runs, the report and the dashboard.",
        ("lightning-tracker unarchive swift-otter-42",),
    ),
    "rm": (
        "Deletes runs and every object they have (metrics, media, checkpoints, TensorBoard files, edits): "
        "lists them with their size and asks first. A run with a heartbeat younger than 10 minutes is refused unless "
        "--force. A deletion cut off half-way reads as deleted; rm again finishes it, rm --undo takes it back "
        "while its run.json is there.",
        (
            "lightning-tracker rm swift-otter-42",
            "lightning-tracker rm -p demo --status failed --dry-run",
            "lightning-tracker rm -p demo -w 'val/acc<0.5' --yes",
            "lightning-tracker rm --undo swift-otter-42",
        ),
    ),
    "demo": (
        "Trains a small digit classifier in several configurations into a store, lists them and writes a report.",
        (
            "lightning-tracker demo",
            "lightning-tracker demo -s ./demo-runs --report demo.html",
        ),
    ),
    # -- housekeeping (cli/housekeeping.py) --
    "du": (
        "Counts the bytes a store holds, per project, per run and per kind (metrics, media, checkpoints, "
        "TensorBoard, other), largest first, from one listing of the store; no file is read.",
        (
            "lightning-tracker du -s s3://bucket/exp",
            "lightning-tracker du -s ./runs -p demo --json",
        ),
    ),
    "gc": (
        "Removes what no reader needs: this machine's spool copies of runs whose upload is complete, chunks "
        "a compaction cut off left behind, media objects and checkpoints nothing names (once older than "
        "--grace), temporary files of a crash. Never touches a live run or one not fully in the store. "
        "Safe to stop and run again.",
        (
            "lightning-tracker gc -s s3://bucket/exp --dry-run",
            "lightning-tracker gc -s ./runs -p demo",
        ),
    ),
    "import": (
        "Imports TensorBoard logs: each folder of event files (TensorBoardLogger's version_N) becomes a run "
        "with its scalars, hyperparameters, images, text and histograms. Importing again adds nothing; "
        "it says which runs' folders hold events since, and --update imports those runs again.",
        (
            "lightning-tracker import tensorboard ./lightning_logs -s ./runs -p mnist",
            "lightning-tracker import tensorboard tb/ -s s3://bucket/exp -p old --json",
        ),
    ),
}


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    parents: list[argparse.ArgumentParser],
    summary: str,
) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` says what it does and gives examples, each line short of 80 columns."""
    details, examples = _DETAILS[name]
    return sub.add_parser(
        name,
        parents=parents,
        help=summary,
        description=textwrap.fill(details, 78),
        epilog="examples:\n" + "\n".join(f"  {line}" for line in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _parser() -> argparse.ArgumentParser:
    from lightning_tracker.cli import compare as comparing
    from lightning_tracker.cli import export as exporting
    from lightning_tracker.cli import housekeeping, producing, reading
    from lightning_tracker.cli import sql as sql_command

    parser = argparse.ArgumentParser(
        prog="lightning-tracker",
        description="Self-hosted experiment tracking.",
        epilog=EXIT_STATUS_HELP,
        parents=[_common(False)],
    )
    parser.add_argument("--version", action="version", version=f"lightning-tracker {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # a subcommand's --debug must not reset one given before the command
    parents = [_store_parent(), _common(argparse.SUPPRESS)]

    runs = _command(sub, "runs", parents, "list runs as a table (or the projects of a store)")
    runs.add_argument("store_arg", nargs="?", metavar="STORE", help="the store, as -s does")
    runs.add_argument("--status", action="append", help="only runs in this status (repeatable)")
    runs.add_argument("--tag", action="append", help="only runs with this tag (repeatable)")
    runs.add_argument(
        "--where",
        "-w",
        action="append",
        metavar="TERM",
        help="only runs where a hyperparameter, metric or field compares true, e.g. "
        "'lr<0.01', 'optimizer=adam', 'val/acc>=0.9', 'min.val/loss<0.3' (a metric's smallest value; "
        "max. its largest), 'tags=baseline', or whose id, name, project, group, status or tags contain "
        "a word; terms combine with AND (or side by side), OR, NOT and parentheses: "
        "'(optimizer=adam OR lr<0.01) NOT tags=broken' (repeatable: all must hold)",
    )
    runs.add_argument("--sort", help="sort by a column; prefix '-' for descending (e.g. -val/acc)")
    runs.add_argument(
        "--columns",
        "-c",
        action="append",
        metavar="NAMES",
        help="hyperparameters and metrics to show, comma-separated; patterns work ('system/*')",
    )
    runs.add_argument("--all", action="store_true", help="every hyperparameter and metric, monitor metrics included")
    _archived_flags(runs)
    runs.add_argument("--json", action="store_true", help="print one JSON document (keys: docs/cli-json.md)")
    runs.add_argument(
        "--group-by",
        "-g",
        metavar="KEYS",
        help="one row per group of runs sharing these keys (group, a hyperparameter, any column; comma-separated): "
        "runs, mean ± std of each metric, best run (by --sort, else the monitored metric)",
    )
    runs.set_defaults(func=reading.cmd_runs)

    show = _command(sub, "show", parents, "one run: metadata, hyperparameters, metric summary")
    show.add_argument("targets", nargs="+", metavar="RUN", help="run id, id prefix or name")
    show.add_argument("--json", action="store_true", help="print one JSON document (keys: docs/cli-json.md)")
    show.set_defaults(func=reading.cmd_show)

    compare = _command(sub, "compare", parents, "runs side by side: hyperparameters that differ, final metrics")
    compare.add_argument("runs", nargs="+", metavar="RUN", help="run ids, id prefixes or names")
    compare.add_argument("--all", action="store_true", help="monitor metrics (gradients/, system/ …) too")
    compare.add_argument("--json", action="store_true", help="print one JSON document (keys: docs/cli-json.md)")
    compare.set_defaults(func=comparing.cmd_compare)

    hist = _command(sub, "hist", parents, "PNG heatmaps (steps x values) of a run's gradient and weight histograms")
    hist.add_argument(
        "targets",
        nargs="+",
        metavar="RUN [PATTERN]",
        help="run id, id prefix or name; then tensors to draw, an fnmatch pattern (default: all)",
    )
    hist.add_argument("--out", help="folder for the PNG files (default ./histograms-<run id>)")
    hist.add_argument("--kind", choices=("gradient", "parameter"), help="only gradients or only weights")
    hist.set_defaults(func=reading.cmd_hist)

    report = _command(sub, "report", parents, "write one self-contained HTML report (opens offline)")
    report.add_argument("runs", nargs="*", metavar="RUN", help="run ids, id prefixes or names (default: every run)")
    report.add_argument(
        "--output",
        "-o",
        default="report.html",
        help="the HTML file to write: a path or any fsspec URL (default report.html)",
    )
    report.add_argument(
        "--share",
        type=float,
        metavar="DAYS",
        help="print a signed https link to the report, valid DAYS days (s3://, gs://, az:// only)",
    )
    report.set_defaults(func=producing.cmd_report)

    serve = _command(sub, "serve", parents, "live dashboard in the browser, updating while runs train")
    serve.add_argument("store_arg", nargs="?", metavar="STORE", help="the store, as -s does")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only; any other needs a token)",
    )
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    serve.add_argument("--refresh", type=float, default=5.0, help="seconds between updates (default 5)")
    serve.add_argument(
        "--token",
        help="secret every request must carry (Bearer header, or ?token= once in a link); prefer "
        "$LIGHTNING_TRACKER_SERVE_TOKEN, which other users cannot read in the process list",
    )
    serve.add_argument(
        "--base-path",
        default="",
        metavar="PATH",
        help="path prefix a reverse proxy forwards without stripping it (e.g. /team/lightning)",
    )
    serve.add_argument(
        "--secure-cookie",
        action="store_true",
        help="send the token's cookie over https only (set it behind a TLS proxy that sends no X-Forwarded-Proto)",
    )
    serve.set_defaults(func=producing.cmd_serve)

    syn = _command(sub, "sync", [_common(argparse.SUPPRESS)], "upload spooled runs (offline runs, outages, crashes)")
    syn.add_argument("paths", nargs="*", help="spool folders of runs (default: every spooled run)")
    syn.add_argument(
        "--spool-dir", help="spool root (default $LIGHTNING_TRACKER_SPOOL or ~/.cache/lightning_tracker/spool)"
    )
    syn.add_argument("--storage-options", metavar="JSON", help=f"fsspec options as JSON (or ${OPTIONS_ENV})")
    syn.add_argument("--list", action="store_true", help="only list spooled runs")
    syn.set_defaults(func=producing.cmd_sync)

    from lightning_tracker.cli import index as indexing

    index = _command(sub, "index", parents, "rebuild a project's index from its run folders")
    index.set_defaults(func=indexing.cmd_index)
    sql = _command(sub, "sql", parents, "a DuckDB query over the views runs and metrics, printed as a table")
    sql.add_argument("query", metavar="QUERY", help='SQL; quote names with dots or slashes: "config.lr"')
    sql.add_argument("--csv", action="store_true", help="print CSV, every digit, instead of a table")
    sql.set_defaults(func=sql_command.cmd_sql)

    export = _command(sub, "export", parents, "a project's points and runs as Delta Lake tables")
    export.add_argument("format", choices=("delta",), help="the table format (delta: Delta Lake)")
    export.add_argument("--output", "-o", required=True, metavar="URL", help="folder or URL of the tables")
    export.add_argument(
        "--delta-options", metavar="JSON", help="delta-rs storage options for URL (default: its AWS_* environment)"
    )
    export.set_defaults(func=exporting.cmd_export)
    _lifecycle_commands(sub, parents)

    demo = _command(sub, "demo", [_common(argparse.SUPPRESS)], "train several configurations and record them")
    demo.add_argument(
        "-s",
        "--store",
        "--save-dir",
        dest="save_dir",
        metavar="STORE",
        help=f"folder or URL for the runs (default ${STORE_ENV} or ./runs)",
    )
    demo.add_argument("--project", default="demo")
    demo.add_argument("--report", default="report.html", help="where to write the report (default report.html)")
    demo.add_argument("--storage-options", metavar="JSON", help=f"fsspec options as JSON (or ${OPTIONS_ENV})")
    demo.set_defaults(func=producing.cmd_demo)

    # -- housekeeping (cli/housekeeping.py) --
    du = _command(sub, "du", parents, "bytes per project, run and kind, largest first")
    du.add_argument("store_arg", nargs="?", metavar="STORE", help="the store, as -s does")
    du.add_argument("--json", action="store_true", help="print one JSON document with stable keys")
    du.set_defaults(func=housekeeping.cmd_du)

    gc = _command(sub, "gc", parents, "remove spool copies, unreferenced objects and chunks a crash left")
    gc.add_argument("store_arg", nargs="?", metavar="STORE", help="the store, as -s does")
    gc.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    gc.add_argument(
        "--grace",
        type=float,
        metavar="SECONDS",
        help="keep unreferenced files younger than this (default 86400: a writer names a file after writing it)",
    )
    gc.add_argument("--force", action="store_true", help="take a --grace below 300 s (only when no writer is at work)")
    gc.add_argument(
        "--spool-dir", help="spool root (default $LIGHTNING_TRACKER_SPOOL or ~/.cache/lightning_tracker/spool)"
    )
    gc.set_defaults(func=housekeeping.cmd_gc)

    imp = _command(sub, "import", parents, "turn other loggers' logs into runs (TensorBoard)")
    imp.add_argument("source", choices=["tensorboard"], help="what wrote the logs")
    imp.add_argument("logdir", metavar="LOGDIR", help="the folder TensorBoard reads (e.g. ./lightning_logs)")
    imp.add_argument("--json", action="store_true", help="print what was imported as JSON")
    imp.add_argument(
        "--update", action="store_true", help="import again, whole, a run whose folder has new event files"
    )
    imp.set_defaults(func=housekeeping.cmd_import)
    return parser


def _archived_flags(p: argparse.ArgumentParser) -> None:
    """``--archived`` / ``--include-archived`` (``--all`` already means every column on ``runs``)."""
    which = p.add_mutually_exclusive_group()
    which.add_argument("--archived", action="store_true", help="only archived runs")
    which.add_argument("--include-archived", action="store_true", help="archived runs too")


def _lifecycle_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    """``tag``, ``note``, ``rename``, ``archive``, ``unarchive`` and ``rm`` (:mod:`.lifecycle`)."""
    from lightning_tracker.cli import lifecycle

    json_flag = {"action": "store_true", "help": "print one JSON document (keys: docs/cli-json.md)"}
    tag = _command(sub, "tag", parents, "add (+TAG) and remove (-TAG) tags of runs")
    tag.add_argument("runs", nargs="+", metavar="RUN... +TAG -TAG", help="runs (ids, id prefixes or names), then tags")
    tag.add_argument("--add-tag", action="append", metavar="TAG", help="a tag to add (as +TAG)")
    tag.add_argument("--remove-tag", action="append", metavar="TAG", help="a tag to remove (as -TAG)")
    tag.add_argument("--json", **json_flag)  # type: ignore[arg-type]
    tag.set_defaults(func=lifecycle.cmd_tag)
    note = _command(sub, "note", parents, "set the note of a run")
    note.add_argument("run", metavar="RUN", help="run id, id prefix or name")
    note.add_argument("text", metavar="TEXT", help="the note ('' clears it)")
    note.add_argument("--json", **json_flag)  # type: ignore[arg-type]
    note.set_defaults(func=lifecycle.cmd_note)
    rename = _command(sub, "rename", parents, "give a run a new name")
    rename.add_argument("run", metavar="RUN", help="run id, id prefix or name")
    rename.add_argument("name", metavar="NEW_NAME", help="the new name")
    rename.add_argument("--json", **json_flag)  # type: ignore[arg-type]
    rename.set_defaults(func=lifecycle.cmd_rename)
    for name, summary, func in (
        ("archive", "hide runs from tables, reports and the dashboard", lifecycle.cmd_archive),
        ("unarchive", "show archived runs again", lifecycle.cmd_unarchive),
    ):
        cmd = _command(sub, name, parents, summary)
        cmd.add_argument("runs", nargs="+", metavar="RUN", help="run ids, id prefixes or names")
        cmd.add_argument("--json", **json_flag)  # type: ignore[arg-type]
        cmd.set_defaults(func=func)
    rm = _command(sub, "rm", parents, "delete runs and every object they have")
    rm.add_argument("runs", nargs="*", metavar="RUN", help="run ids, id prefixes or names (or select with -p/-w)")
    rm.add_argument("--where", "-w", action="append", metavar="TERM", help="only runs where TERM holds, as in runs")
    rm.add_argument("--status", action="append", help="only runs in this status (repeatable)")
    rm.add_argument("--tag", action="append", help="only runs with this tag (repeatable)")
    _archived_flags(rm)
    rm.add_argument("--yes", "-y", action="store_true", help="delete without asking")
    rm.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    rm.add_argument(
        "--force", action="store_true", help="delete running runs too (a heartbeat younger than 10 minutes)"
    )
    rm.add_argument("--undo", action="store_true", help="take back a deletion cut off before it removed anything")
    rm.add_argument("--json", **json_flag)  # type: ignore[arg-type]
    rm.set_defaults(func=lifecycle.cmd_rm)


def _store_url(args: argparse.Namespace) -> tuple[str, str]:
    from lightning_tracker.cli.stores import pick_store
    from lightning_tracker.storage.urls import parse_url

    try:
        url = pick_store(getattr(args, "store", None), getattr(args, "store_arg", None))
        parsed = parse_url(url)
        return parsed.url, parsed.protocol
    except TrackerError:
        return "the store", ""


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    from lightning_tracker.cli.lifecycle import tag_removals_as_options

    args = _parser().parse_args(tag_removals_as_options(sys.argv[1:] if argv is None else argv))
    out, err = console_for(sys.stdout), console_for(sys.stderr)

    def fail(message: str, status: int) -> int:
        if args.debug:
            err.print(Text(traceback.format_exc()))
        err.print(Text.assemble(("error:", "red"), " ", visible(message)), soft_wrap=True)  # one line, however long
        return status

    try:
        return int(args.func(args, out))
    except NothingMatchedError as exc:  # a valid query that matched nothing: said plainly, not an error
        out.print(Text(visible(exc)), soft_wrap=True)
        return exit_status(exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `lightning-tracker runs | head`: the reader has all it wanted
        return 0
    except Exception as exc:  # noqa: BLE001 - a store's failure arrives as any backend's own exception type
        error = exc if isinstance(exc, TrackerError) else as_tracker_error(exc, *_store_url(args))
        return fail(str(error), exit_status(error))
