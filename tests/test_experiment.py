"""experiment.yaml read with pydantic models (core.experiment): lenient where the template is, precise
about where a problem is, with hints for the mistakes people make."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from builders import make_use_case

from llmops_tui.cli import main as cli_main
from llmops_tui.core.experiment import Experiment, parse_experiment
from llmops_tui.core.workspace import load_use_case, load_workspace, use_case_to_dict

REPO = Path(__file__).resolve().parent.parent
REAL_FILES = sorted(
    p
    for base in (REPO / "use_cases", REPO / "tests" / "fixtures")
    for p in base.rglob("experiment*.yaml")
    if "broken_case" not in p.parts
)


def parse(text: str) -> Experiment:
    return parse_experiment(yaml.safe_load(textwrap.dedent(text)), lambda key: "experiment.yaml")


def fields(problems: list[Any]) -> list[str]:
    return [p.field for p in problems]


BASE = """\
name: uc
flow: flows/standard
datasets:
- name: train
  source: data/train.jsonl
  mappings:
    text: ${data.text}
"""


# ------------------------------------------------------------------------------------ shapes users have


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_real_files_read_without_problems_or_warnings(path):
    data = yaml.safe_load(path.read_text())
    if path.name != "experiment.yaml":  # an overlay: its blocks replace the base file's
        data = {**yaml.safe_load((path.parent / "experiment.yaml").read_text()), **data}
    exp = parse_experiment(data, lambda key: path.name)
    assert not exp.problems and not exp.warnings, [str(p) for p in exp.problems + exp.warnings]
    assert exp.datasets and all(d.mappings for d in exp.datasets)
    assert all(ev.dataset_specs for ev in exp.evaluators)


def test_empty_blocks_as_the_template_ships_them_are_accepted():
    exp = parse(
        """\
        name: web_classification
        flow:
        runtime:
        connections:
        datasets:
        - name: train
          source: data/data.jsonl
          description:
          mappings:
        evaluators:
        """
    )
    assert not exp.problems and not exp.warnings
    assert exp.connections == [] and exp.evaluators == []
    assert exp.spec.flow is None and exp.datasets[0].mappings == {}
    assert exp.datasets[0].description is None


def test_unquoted_dates_and_numbers_are_read_as_text():
    exp = parse(
        BASE
        + textwrap.dedent(
            """\
            connections:
            - name: aoai
              api_version: 2024-02-01
              api_base: https://x.openai.azure.com/
              api_key: ${api_key}
            """
        )
    )
    assert not exp.problems
    assert exp.connections[0].api_version == "2024-02-01"
    assert exp.connections[0].connection_type == "AzureOpenAIConnection"  # the template's default


def test_path_is_accepted_for_source_and_api_endpoint_for_api_base():
    exp = parse(
        """\
        datasets:
        - name: train
          path: data/train.jsonl
        connections:
        - name: aoai
          api_endpoint: https://x.openai.azure.com/
          api_key: ${api_key}
        """
    )
    assert not exp.problems and not exp.warnings
    assert exp.datasets[0].location == "data/train.jsonl"
    assert exp.connections[0].endpoint == "https://x.openai.azure.com/"


def test_connection_keys_beyond_ours_are_kept_without_a_warning():
    exp = parse(BASE + "connections:\n- name: search\n  connection_type: CustomConnection\n  index: docs\n")
    assert not exp.warnings
    assert exp.connections[0].extra == {"index": "docs"}


# ----------------------------------------------------------------------------- unknown keys: warnings


def test_unknown_top_level_key_is_a_warning_naming_the_likely_key():
    exp = parse(BASE + "evaluator:\n- name: e\n")
    assert not exp.problems
    (warning,) = exp.warnings
    assert warning.field == "evaluator" and "ignored" in warning.message
    assert "did you mean 'evaluators'?" in warning.hint


def test_prompt_flow_column_mapping_points_at_mappings():
    exp = parse(BASE.replace("  mappings:", "  column_mapping:"))
    assert not exp.problems
    (warning,) = exp.warnings
    assert warning.field == "datasets[0].column_mapping"
    assert "did you mean 'mappings'?" in warning.hint


def test_unknown_evaluator_key_is_located_inside_its_block():
    exp = parse(BASE + "evaluators:\n- name: e\n  flows: flows/e\n")
    assert not exp.problems
    assert fields(exp.warnings) == ["evaluators[0].flows"]
    assert "did you mean 'flow'?" in exp.warnings[0].hint


def test_a_key_written_into_the_file_is_a_warning_that_does_not_repeat_it():
    exp = parse(BASE + "connections:\n- name: my-aoai\n  api_key: sk-abc123secret\n")
    (warning,) = exp.warnings
    assert warning.field == "connections[0].api_key"
    assert "MY_AOAI_API_KEY" in warning.hint
    assert "sk-abc123secret" not in str(warning)


# -------------------------------------------------------------------------------- problems, located


def test_datasets_written_as_a_mapping_is_a_problem_with_the_fix():
    exp = parse("name: uc\ndatasets:\n  train:\n    source: data/train.jsonl\nconnections:\n- name: aoai\n")
    (problem,) = exp.problems
    assert problem.field == "datasets" and problem.message == "must be a list, not a mapping"
    assert "'- '" in problem.hint
    assert [c.name for c in exp.connections] == ["aoai"]  # the other blocks are still read


def test_mappings_written_as_a_list_is_located_with_the_fix():
    exp = parse(BASE.replace("    text: ${data.text}", "    - text: ${data.text}"))
    (problem,) = exp.problems
    assert problem.field == "datasets[0].mappings"
    assert "without '- '" in problem.hint


def test_a_mapping_value_in_braces_without_dollar_says_to_quote_it():
    exp = parse(BASE.replace("${data.text}", "{data.text}"))
    (problem,) = exp.problems
    assert problem.field == "datasets[0].mappings.text"
    assert "must be text" in problem.message and "quote" in problem.hint


def test_one_bad_dataset_hides_no_other():
    exp = parse(BASE + "- source: data/other.jsonl\n- name: third\n  source: data/third.jsonl\n")
    assert fields(exp.problems) == ["datasets[1].name"]
    assert exp.problems[0].message == "missing" and "name" in exp.problems[0].hint
    assert [d.name for d in exp.datasets] == ["train", "third"]
    assert exp.datasets[1].where == "datasets[2]"


def test_dataset_without_source_is_missing_source():
    exp = parse("datasets:\n- name: train\n")
    assert fields(exp.problems) == ["datasets[0].source"]
    assert ".jsonl" in exp.problems[0].hint


def test_evaluator_dataset_problem_names_its_full_place():
    exp = parse(
        BASE
        + textwrap.dedent(
            """\
            evaluators:
            - name: e
              datasets:
              - name: ok
                reference: train
                source: data/train.jsonl
              - reference: train
                source: data/train.jsonl
            """
        )
    )
    assert fields(exp.problems) == ["evaluators[0].datasets[1].name"]
    assert [d.name for d in exp.evaluators[0].dataset_specs] == ["ok"]


def test_a_value_in_the_wrong_place_is_never_repeated():
    exp = parse(BASE + "connections: sk-abc123secret\n")
    (problem,) = exp.problems
    assert problem.field == "connections" and problem.message == "must be a list, not text"
    assert "sk-abc123secret" not in str(problem)
    assert [d.name for d in exp.datasets] == ["train"]


def test_a_file_that_is_not_a_mapping_is_one_problem():
    exp = parse("- name: uc\n- flow: flows/standard\n")
    (problem,) = exp.problems
    assert problem.field == "" and problem.message == "must be a mapping, not a list"


# ------------------------------------------------------------------------------ in the workspace model


def test_overlay_problems_and_warnings_name_the_overlay_file(tmp_path):
    uc_dir = make_use_case(tmp_path)
    (uc_dir / "experiment.dev.yaml").write_text(
        "datasets:\n- source: data/tickets.jsonl\ndatset: x\n"  # no name; a typo
    )
    uc = load_use_case(uc_dir, root=tmp_path, env="dev")
    problem = next(p for p in uc.problems if p.field == "datasets[0].name")
    assert problem.file.endswith("experiment.dev.yaml")
    warning = next(w for w in uc.warnings if w.field == "datset")
    assert warning.file.endswith("experiment.dev.yaml") and "datasets" in warning.hint
    # without --env, the overlay is not read
    assert load_use_case(uc_dir, root=tmp_path).ok


def test_overlay_dataset_mapping_problems_are_located_in_the_overlay(tmp_path):
    uc_dir = make_use_case(tmp_path)
    (uc_dir / "experiment.dev.yaml").write_text(
        "datasets:\n- name: small\n  source: data/tickets.jsonl\n  mappings:\n    ticket: ${data.nope}\n"
    )
    uc = load_use_case(uc_dir, root=tmp_path, env="dev")
    problem = next(p for p in uc.problems if "nope" in p.message)
    assert problem.file.endswith("experiment.dev.yaml")
    assert problem.field == "datasets[0].mappings.ticket"


def test_unknown_key_keeps_the_use_case_usable_and_is_listed(tmp_path, capsys):
    uc_dir = make_use_case(tmp_path)
    exp = uc_dir / "experiment.yaml"
    exp.write_text(exp.read_text() + "owner: data-team\n")
    uc = load_workspace(tmp_path).use_cases[0]
    assert uc.ok and fields(uc.warnings) == ["owner"]
    assert use_case_to_dict(uc, tmp_path)["warnings"][0]["field"] == "owner"
    assert cli_main(["list", "--workspace", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["use_cases"][0]["name"] == "tickets"
    assert cli_main(["list", "--workspace", str(tmp_path), "--strict"]) == 2


def test_evaluator_flow_defaults_to_its_name_under_flows(tmp_path):
    uc_dir = make_use_case(tmp_path)
    (uc_dir / "flows" / "evaluation").rename(uc_dir / "flows" / "label_match")
    exp = uc_dir / "experiment.yaml"
    exp.write_text(exp.read_text().replace("  flow: flows/evaluation\n", ""))
    uc = load_use_case(uc_dir, root=tmp_path)
    assert uc.ok, [str(p) for p in uc.problems]
    assert uc.evaluators[0].flow is not None and uc.evaluators[0].flow.path.name == "label_match"


# ------------------------------------------------------------------------ mappings: one grammar


def test_run_inputs_and_inputs_alias_mappings_are_validated(tmp_path):
    uc_dir = make_use_case(tmp_path)
    exp = uc_dir / "experiment.yaml"
    text = exp.read_text().replace("label: ${data.label}", "label: ${inputs.nope}")
    exp.write_text(text.replace("category: ${run.outputs.category}", "category: ${run.inputs.missing}"))
    uc = load_use_case(uc_dir, root=tmp_path)
    by_field = {p.field: p.message for p in uc.problems}
    assert (
        "the standard flow has no input 'missing'" in by_field["evaluators[0].datasets[0].mappings.category"]
    )
    assert "column 'nope' is not in dataset" in by_field["evaluators[0].datasets[0].mappings.label"]


def test_line_view_reads_target_and_inputs_mappings_like_the_engine(tmp_path):
    from llmops_tui.tui.lineview import review_for

    uc_dir = make_use_case(tmp_path)
    exp = uc_dir / "experiment.yaml"
    text = exp.read_text().replace("${run.outputs.category}", "${target.category}")
    exp.write_text(text.replace("${data.label}", "${inputs.label}"))
    uc = load_use_case(uc_dir, root=tmp_path)
    review = review_for(uc, "tickets_train")
    assert review.answer_keys == ["category"]
    assert [(name, column) for name, _, column in review.truth] == [("label", "label")]
