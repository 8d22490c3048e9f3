"""The README tells the truth: its suite example validates, its snippets parse, every command and
option it shows exists, its tables name what is shipped, and the example CI workflow installs what
the suite it runs needs. Nothing here trains or imports a framework."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

import harness.cli
from harness.adapters import BACKENDS
from harness.analysis import check_report_options
from harness.suite import load_suite

REPO = Path(__file__).parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
WORKFLOW = REPO / ".github" / "workflows" / "harness.yml"

# `harness.cli:main` is the console script (pyproject [project.scripts]): the click group, or a
# function that hands the arguments to it (`harness.cli.cli`).
GROUP: click.Group = harness.cli.main if isinstance(harness.cli.main, click.Group) else harness.cli.cli
OPERATORS = {"&&", "||", "|", ";", "&"}
REDIRECTIONS = {">", ">>", "<", "2>"}


# -- reading the README ------------------------------------------------------------------------


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """Every fenced code block as (language, body)."""
    return [(match.group(1), match.group(2)) for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)]


def section(text: str, heading: str) -> str:
    """The text under the heading `heading` (any level), up to the next heading of that level or higher."""
    match = re.search(rf"^(#+) {re.escape(heading)}$", text, re.M)
    assert match, f"README has no section {heading!r}"
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{len(match.group(1))}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def table_rows(text: str) -> list[list[str]]:
    """The body rows of every markdown table in `text`, as lists of cell texts (header and rule skipped)."""
    rows = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if not line.startswith("|") or re.match(r"^\|[-| ]+\|$", line):
            continue
        if index + 1 < len(lines) and re.match(r"^\|[-| ]+\|$", lines[index + 1]):
            continue  # a header row
        cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
        rows.append([cell.strip() for cell in cells])
    return rows


def suite_example() -> str:
    language, body = fenced_blocks(section(README, "The suite format"))[0]
    assert language == "yaml" and body.startswith("name:")
    return body


def command_lines(text: str) -> Iterator[str]:
    """Every `harness ...` invocation in shell code blocks, `$ ` transcript lines and inline code."""
    for language, body in fenced_blocks(text):
        for line in body.splitlines():
            if language in ("bash", "sh") or line.startswith("$ "):
                yield from split_commands(line.removeprefix("$ "))
    for span in re.findall(r"`(harness [^`]+)`", text):
        yield from split_commands(span)


def split_commands(line: str) -> Iterator[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens: list[str] = []
    skip_next = False
    for token in [*lexer, ";"]:
        if skip_next:
            skip_next = False
        elif token in REDIRECTIONS:
            skip_next = True  # the redirection's file
        elif token in OPERATORS:
            if tokens and tokens[0] == "harness":
                yield shlex.join(tokens)
            tokens = []
        else:
            tokens.append(token)


def resolve(arguments: list[str]) -> tuple[click.Command, str, list[str]]:
    """(the command, its name as typed, the arguments after it) for `harness <words...>`."""
    command: click.Command = GROUP
    names = []
    while isinstance(command, click.Group) and arguments and arguments[0] in command.commands:
        names.append(arguments[0])
        command = command.commands[arguments.pop(0)]
    return command, " ".join(names), arguments


def option_names(command: click.Command) -> set[str]:
    return {
        name
        for parameter in command.params
        for name in (*parameter.opts, *parameter.secondary_opts)
        if name.startswith("-")
    }


README_COMMANDS = sorted(set(command_lines(README)))


# -- the suite format --------------------------------------------------------------------------


def test_the_suite_example_loads_and_its_report_block_is_valid(tmp_path):
    path = tmp_path / "example.yaml"
    path.write_text(suite_example())
    suite = load_suite(path)
    labels = {trial.arm: dict(trial.cell) for trial in suite.trials}
    options = check_report_options(suite.report, suite.arms, arm_labels=labels)
    # What the annotation says: each arm against the arm that differs from it only in `optimizer`.
    for arm in suite.arms:
        reference = options.reference_for(arm)
        assert labels[reference]["optimizer"] == "sgd"
        assert {axis: label for axis, label in labels[reference].items() if axis != "optimizer"} == {
            axis: label for axis, label in labels[arm].items() if axis != "optimizer"
        }
    # The prose quotes the example's arm names; they must be real.
    assert "sgd,hidden=[64, 64],lr=0.1,batch_size=32" in suite.arms
    assert "adam,hidden=[64, 64],lr=0.1,batch_size=32" in suite.arms


def test_the_suite_example_passes_harness_validate(tmp_path):
    path = tmp_path / "example.yaml"
    path.write_text(suite_example())
    result = CliRunner().invoke(GROUP, ["validate", str(path)])
    assert result.exit_code == 0, result.output


def test_the_yaml_snippets_parse(tmp_path):
    from harness.check import parse_check_block, validate_claims

    snippets = [yaml.safe_load(body) for language, body in fenced_blocks(README) if language == "yaml"]
    checks = [snippet["check"] for snippet in snippets if set(snippet) == {"check"}]
    claims = [snippet["expect"] for snippet in snippets if set(snippet) == {"expect"}]
    assert checks and claims
    for block in checks:
        parse_check_block(block)
    for texts in claims:  # the snippet's arms: sgd, adam and `adam,hidden=[32]`
        validate_claims(texts, ("sgd", "adam", "adam,hidden=[32]"))
    # The inline diagnostics example is a valid `diagnostics:` block of the suite example.
    inline = re.search(r"`(diagnostics: \{.*?\})`", README.replace("\n", " "))
    assert inline
    path = tmp_path / "diagnostics.yaml"
    path.write_text(suite_example() + inline.group(1) + "\n")
    load_suite(path)


# -- commands ----------------------------------------------------------------------------------


def test_the_readme_shows_commands():
    assert len(README_COMMANDS) > 15 and any(line.startswith("harness baseline save") for line in README_COMMANDS)


@pytest.mark.parametrize("line", README_COMMANDS)
def test_every_readme_command_parses(line):
    check_command_parses(line)


def check_command_parses(line: str) -> None:
    """Every option of `line` exists in its command, and click parses the line."""
    command, name, arguments = resolve(shlex.split(line)[1:])
    assert command is not GROUP or not arguments, f"{line!r}: no command {arguments[0]!r}"
    known = option_names(command)
    for token in arguments:
        if token == "--":
            break
        if token.startswith("-") and len(token) > 1 and not token[1].isdigit():
            assert token.split("=")[0] in known, (
                f"{line!r}: `harness {name}` has no option {token!r}; it has {sorted(known)}"
            )
    with command.make_context(f"harness {name}", list(arguments), resilient_parsing=True):
        pass


def test_every_command_is_in_the_commands_table_with_an_example():
    rows = table_rows(section(README, "Commands").split("`harness run` options")[0])
    listed = {}
    for command_cell, _, example in rows:
        words = shlex.split(command_cell.strip("`"))
        _, name, _ = resolve(words[1:])
        listed[name] = example
        assert example.startswith(f"`harness {name} ") or example == f"`harness {name}`", (
            f"{command_cell}: the example column shows no `harness {name}` call"
        )
    expected = set()
    for name, command in GROUP.commands.items():
        if isinstance(command, click.Group):
            expected |= {f"{name} {sub}" for sub in command.commands}
        else:
            expected.add(name)
    assert set(listed) == expected


@pytest.mark.parametrize("name", sorted(GROUP.commands))
def test_every_command_has_help(name):
    result = CliRunner().invoke(GROUP, [name, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output, result.output


def test_the_options_the_readme_lists_exist():
    text = section(README, "Commands")
    run_paragraph = text.split("`harness run` options:")[1].split("The other commands' options:")[0]
    documented = {"run": set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", run_paragraph))}
    for row in table_rows(text.split("The other commands' options:")[1]):
        name = row[0].strip("`").removeprefix("harness ")
        documented[name] = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", row[1]))
    for name, options in documented.items():
        command, _, _ = resolve(name.split())
        assert options, name
        assert options <= option_names(command), (
            f"`harness {name}`: {sorted(options - option_names(command))} do not exist"
        )
    # The run paragraph names every option of `harness run` (the other tables may abridge nothing either).
    for name, options in documented.items():
        command, _, _ = resolve(name.split())
        missing = {
            max(parameter.opts, key=len)
            for parameter in command.params
            if isinstance(parameter, click.Option) and not set(parameter.opts) & options
        } - {"--help"}
        assert not missing, f"the README does not list `harness {name}` options {sorted(missing)}"


# -- tables ------------------------------------------------------------------------------------


def test_every_shipped_suite_is_in_the_suites_table_and_nothing_else():
    rows = table_rows(README.split("Shipped suites")[1].split("\n## ")[0])
    listed = {row[0].strip("`") for row in rows}
    shipped = {load_suite(path).name for path in (REPO / "suites").glob("*.yaml")}
    assert listed == shipped


def test_the_backend_table_names_each_backends_extras():
    rows = table_rows(README.split("Which extra brings which backend")[1].split("\n\n`all`")[0])
    listed = {}
    for backends, extras in rows:
        for backend in re.findall(r"`([\w-]+)`", backends):
            listed[backend] = set(extras.strip("`").split(","))
    assert listed == {name: set(entry.extra.split(",")) for name, entry in BACKENDS.items()}


# -- installs: pyproject extras and the example workflow -----------------------------------------


def pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def expand_extras(extras: set[str]) -> set[str]:
    """The extras `pip install ".[extras]"` installs, with `harness[...]` self-references followed."""
    table = pyproject()["project"]["optional-dependencies"]
    result, pending = set(), list(extras)
    while pending:
        extra = pending.pop()
        if extra in result:
            continue
        assert extra in table, f"no extra {extra!r} in pyproject.toml"
        result.add(extra)
        for requirement in table[extra]:
            match = re.match(r"harness\[([\w,]+)\]", requirement)
            if match:
                pending.extend(match.group(1).split(","))
    return result


def backend_extras(backend: str) -> set[str]:
    return set(BACKENDS[backend].extra.split(","))


def test_all_installs_every_backend():
    installed = expand_extras({"all"})
    for name in BACKENDS:
        assert backend_extras(name) <= installed, f"`.[all]` lacks what backend {name!r} needs"


def test_the_workflow_installs_what_its_suite_needs():
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    checked = 0
    for job_name, job in workflow["jobs"].items():
        scripts = [step.get("run", "") for step in job["steps"]]
        installed: set[str] = set()
        for script in scripts:
            for extras in re.findall(r'pip install -e "?\.\[([\w,]+)\]', script):
                installed |= expand_extras(set(extras.split(",")))
        for script in scripts:
            for line in (part for text in script.splitlines() for part in split_commands(text)):
                words = shlex.split(line)
                _, name, arguments = resolve(words[1:])
                if name == "run":
                    backends = [arguments[i + 1] for i, word in enumerate(arguments) if word == "--backend"]
                    suite = load_suite(REPO / arguments[0])
                    for backend in backends or suite.backends:
                        missing = backend_extras(backend) - installed
                        assert not missing, (
                            f"job {job_name}: `{line}` runs {backend}, but the workflow does not install {missing}"
                        )
                    checked += 1
                if name == "report" or "--report" in arguments:
                    assert "report" in installed, f"job {job_name}: `{line}` needs the report extra"
    assert checked == 2  # both jobs run the smoke suite


def test_the_workflow_commands_parse():
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    lines = [
        part
        for job in workflow["jobs"].values()
        for step in job["steps"]
        for text in step.get("run", "").splitlines()
        for part in split_commands(text)
    ]
    assert len(lines) >= 5
    for line in lines:
        check_command_parses(line)
