"""A synthetic but realistic sweep run written through the real RunStore API, plus a tiny workspace with
gates and prices. Used by the comparison tests and by ``benchmarks/compare_speed.py``.

Cell 0 is the baseline (all default variants, no params). Each cell has an accuracy offset, so some cells
are clearly better, one is the same as the baseline, and one is worse.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from llmops_tui.core.store import CellRecord, LineRecord, RunStore

USE_CASE = "ner_demo"
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def write_workspace(root: Path, gates: list[str] | None = None) -> Path:
    """A minimal workspace: one use case with an LLM node in two variants, prices and gates."""
    uc = root / "use_cases" / USE_CASE
    flow = uc / "flows" / "standard"
    flow.mkdir(parents=True, exist_ok=True)
    (uc / "data").mkdir(exist_ok=True)
    (uc / "data" / "data.jsonl").write_text('{"text": "a b c", "answer": "b"}\n', encoding="utf-8")
    (uc / "experiment.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: {USE_CASE}
            flow: flows/standard
            datasets:
              - name: main
                source: data/data.jsonl
                mappings:
                  text: ${{data.text}}
            """
        ),
        encoding="utf-8",
    )
    (flow / "prompt.jinja2").write_text("system:\nFind entities.\nuser:\n{{text}}\n", encoding="utf-8")
    (flow / "flow.dag.yaml").write_text(
        textwrap.dedent(
            """\
            inputs:
              text:
                type: string
            outputs:
              entities:
                type: string
                reference: ${NER_LLM.output}
            nodes:
            - name: NER_LLM
              use_variants: true
            node_variants:
              NER_LLM:
                default_variant_id: variant_0
                variants:
                  variant_0:
                    node:
                      type: llm
                      source:
                        type: code
                        path: prompt.jinja2
                      inputs:
                        deployment_name: gpt-35-turbo
                        temperature: 0
                        text: ${inputs.text}
                      connection: aoai
                      api: chat
                  variant_1:
                    node:
                      type: llm
                      source:
                        type: code
                        path: prompt.jinja2
                      inputs:
                        deployment_name: gpt-4o
                        temperature: 0
                        text: ${inputs.text}
                      connection: aoai
                      api: chat
            """
        ),
        encoding="utf-8",
    )
    gate_lines = "\n".join(
        f"  - '{g}'" for g in (gates if gates is not None else ["f1 >= 0.6", "error_rate <= 0.05"])
    )
    (uc / "llmops.yaml").write_text(
        "gates:\n" + gate_lines + "\n"
        "prices:\n"
        "  gpt-35-turbo: {prompt: 0.0005, completion: 0.0015}\n"
        "  gpt-4o: {prompt: 0.005, completion: 0.015}\n",
        encoding="utf-8",
    )
    return root


def make_run(
    store: RunStore,
    *,
    run_id: str = "run-0001",
    n_cells: int = 4,
    n_lines: int = 200,
    offsets: list[float] | None = None,
    fail_rate: float = 0.01,
    seed: int = 7,
    injected_output: str | None = None,
    datasets: tuple[str, ...] = ("main",),
    llm_endpoint: str = "sandbox",
) -> list[str]:
    """Write one completed run with ``n_cells`` cells per dataset x ``n_lines`` lines. Returns the cell ids.

    Per-line scores come from evaluator ``matcher``: ``exact_match`` (0/1) and ``f1`` (continuous); the
    aggregate metrics hold their means plus ``precision`` (aggregate only). ``offsets[i]`` shifts cell i's
    quality (default: 0, +0.15, 0, -0.1, ... repeating).
    """
    rng = np.random.default_rng(seed)
    offsets = offsets or [[0.0, 0.15, 0.0, -0.1][i % 4] for i in range(n_cells)]
    defaults = {"NER_LLM": "variant_0"}
    store.create_run(
        run_id,
        USE_CASE,
        None,
        {
            "options": {},
            "defaults": defaults,
            "cell_count": n_cells * len(datasets),
            "llm_endpoint": llm_endpoint,
        },
    )
    records: list[CellRecord] = []
    for d, ds in enumerate(datasets):
        for i in range(n_cells):
            variants = {"NER_LLM": "variant_1" if i % 2 else "variant_0"}
            params: dict[str, Any] = {} if i < 2 else {"NER_LLM.temperature": round(0.1 * i, 2)}
            records.append(
                CellRecord(
                    run_id, f"c{d}{i:06d}", len(records), variants, params, ds, 0, None, n_lines, "completed"
                )
            )
    store.add_cells(run_id, records)
    # A shared per-line difficulty makes cells correlated over lines, as real ones are.
    difficulty = rng.beta(2, 2, n_lines)
    for rec in records:
        i = int(rec.cell_id[-6:])
        off = offsets[i]
        f1 = np.clip(difficulty + off + rng.normal(0, 0.1, n_lines), 0, 1)
        exact = (rng.random(n_lines) < np.clip(difficulty + off, 0, 1)).astype(int)
        failed = rng.random(n_lines) < fail_rate
        evals = []
        for n in range(n_lines):
            text = " ".join(WORDS[(n + k) % len(WORDS)] for k in range(6))
            out = " ".join(WORDS[(n * 3 + k + (i if exact[n] == 0 else 0)) % len(WORDS)] for k in range(3))
            if injected_output is not None and n == 0:
                out = injected_output
            ok = not failed[n]
            pt = int(40 + rng.integers(0, 20))
            ct = int(10 + rng.integers(0, 10))
            store.record_line(
                LineRecord(
                    run_id=run_id,
                    cell_id=rec.cell_id,
                    line=n,
                    status="ok" if ok else "failed",
                    inputs={"text": text},
                    outputs={"entities": out} if ok else None,
                    error=None if ok else "RateLimitError: 429 Too Many Requests",
                    latency_ms=float(rng.lognormal(np.log(300 + 100 * (i % 2)), 0.3)),
                    prompt_tokens=pt if ok else 0,
                    completion_tokens=ct if ok else 0,
                    total_tokens=pt + ct if ok else 0,
                    llm_calls=1,
                    cache_hit=bool(rng.random() < 0.1),
                    finished_at=1_700_000_000.0 + n,
                )
            )
            if ok:
                evals.append((n, "ok", {"exact_match": int(exact[n]), "f1": round(float(f1[n]), 4)}, None))
        store.record_eval_lines(run_id, rec.cell_id, "matcher", evals)
        ok_lines = [e[2] for e in evals]
        store.record_metrics(
            run_id,
            rec.cell_id,
            "matcher",
            {
                "exact_match": float(np.mean([e["exact_match"] for e in ok_lines])),
                "f1": float(np.mean([e["f1"] for e in ok_lines])),
                "precision": float(np.clip(0.7 + off, 0, 1)),
            },
        )
    store.finish_run(run_id, "completed", {"cell_count": len(records), "lines_done": len(records) * n_lines})
    return [r.cell_id for r in records]
