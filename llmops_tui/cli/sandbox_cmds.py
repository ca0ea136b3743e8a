"""`llmops sandbox`: serve the offline sandbox model until Ctrl-C or SIGTERM.

The first line on stdout is the base URL, so scripts can start it with ``--port 0`` and read the port.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Annotated

import typer

from llmops_tui.core.errors import LlmopsError


def register(app: typer.Typer) -> None:
    """Add the `sandbox` command to the CLI."""

    @app.command("sandbox")
    def sandbox(
        host: Annotated[
            str, typer.Option("--host", help="Address to bind (loopback unless --allow-remote).")
        ] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="Port to bind; 0 picks a free one.")] = 0,
        latency_ms: Annotated[float, typer.Option("--latency-ms", help="Added latency per request.")] = 0.0,
        jitter_ms: Annotated[
            float, typer.Option("--jitter-ms", help="Uniform extra latency, 0..N ms.")
        ] = 0.0,
        rate_429: Annotated[float, typer.Option("--rate-429", help="Share of requests answered 429.")] = 0.0,
        rate_500: Annotated[float, typer.Option("--rate-500", help="Share of requests answered 500.")] = 0.0,
        rate_timeout: Annotated[
            float, typer.Option("--rate-timeout", help="Share of requests held past the timeout.")
        ] = 0.0,
        timeout_hold_s: Annotated[
            float, typer.Option("--timeout-hold-s", help="How long a timed-out request is held.")
        ] = 30.0,
        bad_answer_rate: Annotated[
            float,
            typer.Option(
                "--bad-answer-rate",
                help="Share of chat/completion requests answered 200 with something that is not a completion.",
            ),
        ] = 0.0,
        bad_answer_kind: Annotated[
            list[str] | None,
            typer.Option(
                "--bad-answer-kind",
                metavar="KIND",
                help="Which bad answers to draw from (repeatable): invalid_json, empty, html, no_choices, "
                "null_content; default all.",
            ),
        ] = None,
        seed: Annotated[int, typer.Option("--seed", help="Seed of answers and faults.")] = 0,
        allow_remote: Annotated[
            bool, typer.Option("--allow-remote", help="Allow binding a non-loopback address.")
        ] = False,
    ) -> None:
        """Serve the offline sandbox model (OpenAI / Azure OpenAI compatible) until interrupted."""
        from llmops_tui.sandbox import is_loopback, start_sandbox
        from llmops_tui.sandbox.server import BAD_ANSWER_KINDS

        if not is_loopback(host) and not allow_remote:
            raise LlmopsError(
                f"--host {host} is not a loopback address",
                hint="the sandbox accepts any API key; pass --allow-remote to expose it anyway",
            )
        try:
            handle = start_sandbox(
                host=host,
                port=port,
                latency_ms=latency_ms,
                jitter_ms=jitter_ms,
                rate_429=rate_429,
                rate_500=rate_500,
                rate_timeout=rate_timeout,
                seed=seed,
                timeout_hold_s=timeout_hold_s,
                bad_answer_rate=bad_answer_rate,
                bad_answer_kinds=tuple(bad_answer_kind or BAD_ANSWER_KINDS),
            )
        except ValueError as exc:
            raise LlmopsError(str(exc)) from None
        except OSError as exc:
            raise LlmopsError(
                f"cannot bind {host}:{port}: {exc.strerror or exc}", hint="choose another --port"
            ) from None
        sys.stdout.write(handle.url + "\n")
        sys.stdout.flush()
        print(
            f"sandbox model serving on {handle.url} (OpenAI: {handle.url}/v1, Azure: {handle.url}); Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        done = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: done.set())
        try:
            while not done.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            handle.stop()
