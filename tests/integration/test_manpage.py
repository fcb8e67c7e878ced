"""`vscanout --help` and the man page (docs/vscanout.1.scd) list the same options, grouped the same
way, and the option parser knows every one of them.

Data-driven: the option lists come from parsing `--help`'s output, the .scd source and the
parser's getopt table (src/compositor/options.cpp), so a new option needs only its help line and
its man page entry.

An option entry in `--help` is a line indented by 2 to 6 spaces that starts with a dash: its forms
("-c, --cache N", "--vulkan-device DEV, --vk-device DEV") run up to two spaces or the line's end.
In the .scd it is a line starting with `*-` ("*-c*, *--cache* _N_"), under a `## Group` heading of
`# OPTIONS`.
"""

import os
import re
import signal
import subprocess

from conftest import REPO, run_cli

SCD = os.path.join(REPO, "docs", "vscanout.1.scd")
OPTIONS_CPP = os.path.join(REPO, "src", "compositor", "options.cpp")

HELP_ENTRY_RX = re.compile(r"^ {2,6}(-.*?)(?: {2,}|$)")
HELP_GROUP_RX = re.compile(r"^([A-Z][\w-]*)\b[^:]*:$")  # "Kiosk (DRM/KMS):"; its first word is the group
FORM_RX = re.compile(r"^(--?[A-Za-z0-9][\w-]*)(?: (\S+)|(\[=\S+\]))?$")  # "--cache N", "--allow-input[=yes|no]"


def parse_forms(spec, where):
    """'-c, --cache N' -> {'-c': None, '--cache': 'N'}, '--allow-input[=yes|no]' -> {'--allow-input':
    '[=yes|no]'}; argument markup (<>, *, _) dropped."""
    forms = {}
    for form in spec.split(", "):
        form = re.sub(r"[*_<>\\]", "", form).strip()
        m = FORM_RX.match(form)
        assert m, f"{where}: cannot read the option form '{form}' in '{spec}'"
        forms[m.group(1)] = m.group(2) or m.group(3)
    return forms


def entry_key(forms):
    """An entry as its names and the argument of its long form(s)."""
    args = {a for name, a in forms.items() if name.startswith("--")}
    return (tuple(sorted(forms)), tuple(sorted(a or "" for a in args)))


def help_entries():
    r = run_cli(["--help"])
    assert r.returncode == 0, r.stderr
    entries, group = {}, None
    for line in r.stdout.splitlines():
        if m := HELP_GROUP_RX.match(line):
            group = m.group(1)
        elif m := HELP_ENTRY_RX.match(line):
            forms = parse_forms(m.group(1), "--help")
            entries[entry_key(forms)] = group
    return entries


def man_entries():
    entries, section, group = {}, None, None
    for line in open(SCD, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.startswith("# "):
            section, group = line[2:].strip(), None
        elif line.startswith("## "):
            group = line[3:].split()[0]  # the first word, as in --help
        elif section == "OPTIONS" and line.startswith("*-"):
            forms = parse_forms(line, SCD)
            entries[entry_key(forms)] = group
    return entries


def show(keys):
    return ", ".join("/".join(names) + (" " + "/".join(a for a in args if a) if any(args) else "")
                     for names, args in sorted(keys))


def test_help_and_man_page_list_the_same_options():
    helps, mans = help_entries(), man_entries()
    assert len(helps) >= 15 and len(mans) >= 15, (helps, mans)  # the parsers found the entries
    only_help = set(helps) - set(mans)
    only_man = set(mans) - set(helps)
    assert not only_help, f"in --help, not in the man page's OPTIONS (or with another argument): {show(only_help)}"
    assert not only_man, f"in the man page's OPTIONS, not in --help (or with another argument): {show(only_man)}"


def test_help_and_man_page_group_options_alike():
    helps, mans = help_entries(), man_entries()
    assert all(helps.values()), f"--help entries outside a group: {show(k for k, g in helps.items() if not g)}"
    differ = {k: (helps[k], mans[k]) for k in set(helps) & set(mans) if helps[k] != mans[k]}
    assert not differ, "grouped differently (--help, man page): " + "; ".join(
        f"{show([k])}: {g}" for k, g in differ.items())
    # The modes have their groups in both, in the same order (Headless has prose only).
    help_text = run_cli(["--help"]).stdout
    help_groups = [m.group(1) for m in map(HELP_GROUP_RX.match, help_text.splitlines()) if m]
    man_text = open(SCD, encoding="utf-8").read()
    options = man_text.split("\n# OPTIONS\n", 1)[1].split("\n# ", 1)[0]
    man_groups = re.findall(r"^## (\S+)", options, re.M)
    assert help_groups == man_groups, (help_groups, man_groups)
    for mode in ("General", "Sources", "Headless", "Nested", "Kiosk", "Privileges", "Debugging"):
        assert mode in man_groups, man_groups


def test_parser_options_are_documented():
    """Every option in the parser's getopt table (long and short) is in --help, and every option
    --help names is one the parser accepts."""
    source = open(OPTIONS_CPP, encoding="utf-8").read()
    longs = {"--" + n for n in re.findall(r'^\s*\{"([\w-]+)", (?:no|required|optional)_argument', source, re.M)}
    # The short options: a string literal given to getopt_long, directly or through a variable.
    m = re.search(r'getopt_long\(argc, argv, "([^"]*)"', source)
    if not m:
        var = re.search(r"getopt_long\(argc, argv, (\w+),", source).group(1)
        m = re.search(r"\b%s\[\]\s*=\s*\"([^\"]*)\"" % var, source)
    assert m, "cannot find getopt_long's short options in " + OPTIONS_CPP
    shorts_spec = m.group(1)
    shorts = {"-" + c for c in shorts_spec if c.isalnum()}
    assert "--source" in longs and "-s" in shorts, (longs, shorts)
    documented = {name for names, _ in help_entries() for name in names}
    assert longs | shorts == documented, (
        f"in the parser only: {sorted((longs | shorts) - documented)}; "
        f"in --help only: {sorted(documented - (longs | shorts))}")
    for names, args in help_entries():
        for name in names:
            value = [] if not any(args) or args[0].startswith("[") or not name.startswith("--") else ["x"]
            argv = [name] + value + ["--version"]
            r = run_cli(argv)
            assert "unknown option" not in r.stderr, (argv, r.stderr)


def test_man_page_renders_without_warnings(tmp_path):
    """The .scd through scdoc (as meson builds it) and man: no scdoc error, no groff warning."""
    page = tmp_path / "vscanout.1"
    with open(SCD, "rb") as src, open(page, "wb") as out:
        r = subprocess.run(["scdoc"], stdin=src, stdout=out, stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    for width in ("80", "120"):
        env = dict(os.environ, MANWIDTH=width, LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="")
        r = subprocess.run(["man", "--warnings", "-l", str(page)], capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0 and r.stderr == "", (width, r.returncode, r.stderr)
        text = r.stdout
        for section in ("NAME", "SYNOPSIS", "OPTIONS", "SOURCES", "STATISTICS", "ENVIRONMENT", "SIGNALS",
                        "EXIT STATUS", "EXAMPLES"):
            assert re.search(rf"^{section}$", text, re.M), f"no {section} section in the rendered page"
        # No scdoc markup left over (an unbalanced * or _ shows up as-is).
        assert not re.search(r"(^|\s)[*_]\w|\w[*_](\s|$)", text), re.findall(r".*(?:\s[*_]\w|\w[*_]\s).*", text)[:5]


def test_man_page_documents_every_stats_key(vscanout):
    """Every key of a real --stats line is described under STATISTICS, and nothing else is."""
    text = open(SCD, encoding="utf-8").read()
    stats = text.split("\n# STATISTICS\n", 1)[1].split("\n# ", 1)[0]
    # The terms: lines at column 0 ("*imports*, *cache_hits*, *evictions*"); descriptions are indented.
    documented = {key for line in stats.splitlines() if line.startswith("*") for key in re.findall(r"\*(\w+)\*", line)}
    vs = vscanout(source="sim:heads=1,fps=0")
    vs.wait_outputs({"HEAD-0": (1280, 800)})
    written = vs.stop(signal.SIGTERM)
    assert written is not None and sorted(written) == [0], written
    keys = set(written[0])
    assert keys == documented, (sorted(keys - documented), sorted(documented - keys))
