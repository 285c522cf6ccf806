"""`pip-linkmode` as a stand-in for `pip`: pip's command line, pip's output contract, one-line errors.

Each install runs real pip (23.x and 26.x where pip's own parsing is involved)
on real wheels from the index, into real venvs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IS_ROOT, _pyenv_root, make_venv, script, site_packages, venv_python

ROOT = Path(__file__).resolve().parent.parent
#: the oldest and the newest pip line we attach to
PIPS = ["23.3.2", "26.3"]
SHORT = re.compile(r"^Linked (\d+) files \(hardlink\) from the cache; [\d.]+ [kM]B not written$", re.M)


@pytest.fixture(scope="module")
def six_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("six")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:", "-d", str(dest), "six==1.16.0"],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"six 1.16.0 could not be downloaded (index unreachable?): {proc.stderr.strip()[-200:]}")
    return dest


@pytest.fixture(scope="module", params=PIPS)
def pip_env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with this pip, and the project under test importable in it."""
    venv = make_venv(tmp_path_factory.mktemp(f"pip{request.param}") / "v")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", venv_python(venv), "install", "-q", "--disable-pip-version-check",
         f"pip=={request.param}", "installer", "filelock", "packaging"],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"pip {request.param} could not be installed (index unreachable?): {proc.stderr.strip()[-200:]}")
    (site_packages(venv) / "pip_linkmode_dev.pth").write_text(str(ROOT) + "\n")
    return venv


def _ours(python: str, *args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([python, "-m", "pip_linkmode", *args], capture_output=True, text=True, env=env)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _six(venv: Path) -> Path:
    return site_packages(venv) / "six.py"


def _uninstall_six(venv: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--python", venv_python(venv), "uninstall", "-y", "-q", "six"],
                   capture_output=True, check=True)


# -- pip's general options before the command ----------------------------------

FORMS = {
    "-q": (["-q", "install"], False),
    "-v": (["-v", "install"], True),
    "--isolated": (["--isolated", "install"], True),
    "--require-virtualenv": (["--require-virtualenv", "install"], True),
    "--disable-pip-version-check": (["--disable-pip-version-check", "install"], True),
    "ours first": (["--link-mode", "hardlink", "install"], True),
    "--cache-dir=": (["--link-mode=hardlink", "install"], True),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_general_options_before_the_command_link(form: str, pip_env: Path, six_wheels: Path, tmp_path: Path) -> None:
    """``pip-linkmode -q install six`` links as ``pip-linkmode install -q six``
    does (under pip 23 and 26), and our own options may come first too."""
    before, shows_summary = FORMS[form]
    cache = tmp_path / "cache"
    _uninstall_six(pip_env)
    first = ["--cache-dir", str(cache)] if form != "--cache-dir=" else [f"--cache-dir={cache}"]
    proc = _ours(venv_python(pip_env), *first, *before, "--no-index", "--find-links", str(six_wheels), "six==1.16.0")
    assert "Successfully installed six-1.16.0" in proc.stdout or form == "-q", proc.stdout
    assert _six(pip_env).stat().st_nlink == 2  # linked from the cache
    assert (cache / "entries").is_dir()
    assert bool(SHORT.search(proc.stderr)) is shows_summary, proc.stderr


def test_python_and_pip_python_before_the_command(six_wheels: Path, tmp_path: Path) -> None:
    """``--python X install`` and ``PIP_PYTHON=X ... install`` install into X by links."""
    venv = make_venv(tmp_path / "v")
    cache = tmp_path / "cache"
    links = ["--no-index", "--find-links", str(six_wheels), "--cache-dir", str(cache)]
    proc = _ours(sys.executable, "--python", str(venv), "install", *links, "six==1.16.0")
    assert _six(venv).stat().st_nlink == 2 and SHORT.search(proc.stderr), proc.stderr
    venv = make_venv(tmp_path / "v2")
    env = {**os.environ, "PIP_PYTHON": venv_python(venv)}
    proc = _ours(sys.executable, "install", *links, "six==1.16.0", env=env)
    assert _six(venv).stat().st_nlink == 3 and SHORT.search(proc.stderr), proc.stderr


_OUTER = """
import sys
from pip_linkmode.cli import main
status = main(sys.argv[1:])
heavy = sorted(m for m in ("pip_linkmode.pip_plugin", "filelock", "installer", "pip._internal") if m in sys.modules)
print("outer imported:", heavy)
sys.exit(status)
"""


def test_installing_into_another_interpreter_starts_it_without_our_install_imports(
    six_wheels: Path, tmp_path: Path
) -> None:
    """The process that only re-runs the install in ``--python``'s
    interpreter imports none of what installing needs (0.15 s)."""
    venv = make_venv(tmp_path / "v")
    links = ["--no-index", "--find-links", str(six_wheels), "--cache-dir", str(tmp_path / "cache")]
    proc = subprocess.run([sys.executable, "-c", _OUTER, "install", "--python", str(venv), *links, "six==1.16.0"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "outer imported: []" in proc.stdout, proc.stdout
    assert _six(venv).stat().st_nlink == 2 and SHORT.search(proc.stderr), proc.stderr


@pytest.mark.skipif(os.name == "nt", reason="the interpreters older than 3.10 here are pyenv's Linux builds")
def test_an_interpreter_older_than_3_10_is_one_line(tmp_path: Path) -> None:
    old = sorted((_pyenv_root() / "versions").glob("3.[6-9].*/bin/python"))
    if not old:
        pytest.skip("no Python older than 3.10 under pyenv to aim --python at")
    proc = _ours(sys.executable, "--python", str(old[-1]), "install", "six", check=False)
    minor = re.search(r"3\.\d", old[-1].parent.parent.name)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (
        f"pip-linkmode: {old[-1]} is Python {minor and minor.group()}; pip-linkmode installs into Python 3.10 to 3.13 "
        "(use plain pip there: python -m pip install ...)\n"
    ), proc.stderr


def test_no_cache_dir_links_from_a_temporary_cache(six_wheels: Path, tmp_path: Path) -> None:
    """``--no-cache-dir``: nothing persistent, files still placed by links from
    a cache made for this run, and the summary says so."""
    venv = make_venv(tmp_path / "v")
    kept = tmp_path / "never"
    env = {**os.environ, "PIP_LINKMODE_CACHE_DIR": str(kept)}
    proc = _ours(sys.executable, "--no-cache-dir", "--python", str(venv), "install", "--no-index", "--find-links",
                 str(six_wheels), "six==1.16.0", env=env)
    assert re.search(r"^Linked \d+ files \(\w+\) from a temporary cache \(--no-cache-dir: removed now\)", proc.stderr, re.M), proc.stderr
    assert not kept.exists()
    assert not [p for p in Path(venv).iterdir() if p.name.startswith(".pip-linkmode-tmp-")]
    assert "1.16.0" in _six(venv).read_text()


def test_console_script_follows_the_active_virtual_env(six_wheels: Path, tmp_path: Path) -> None:
    """The ``pip-linkmode`` command of another environment (a tools venv,
    pipx: here the test runner's) installs into the active ``VIRTUAL_ENV``
    and says so."""
    exe = shutil.which("pip-linkmode", path=os.path.dirname(sys.executable)) or str(script(Path(sys.prefix), "pip-linkmode"))
    if not os.path.exists(exe):
        pytest.skip("pip-linkmode is not installed as a command in the running environment (pip install -e .)")
    venv = make_venv(tmp_path / "active")
    env = {**os.environ, "VIRTUAL_ENV": str(venv)}
    proc = subprocess.run([exe, "install", "--cache-dir", str(tmp_path / "c"), "--no-index", "--find-links", str(six_wheels),
                           "six==1.16.0"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert _six(venv).stat().st_nlink == 2
    assert f"; into the active virtual environment {venv} (VIRTUAL_ENV)" in proc.stderr, proc.stderr


# -- the output contract ---------------------------------------------------------


def test_report_json_on_stdout_summary_on_stderr(pip_env: Path, six_wheels: Path, tmp_path: Path) -> None:
    """stdout is pip's (``--report -`` JSON stays valid); our summary is on
    stderr, short, silenced by -q; -v says why and, per wheel, cache hit or
    unpacked now; a copy does not claim bytes not written."""
    python, cache = venv_python(pip_env), tmp_path / "cache"
    links = ["--cache-dir", str(cache), "--no-index", "--find-links", str(six_wheels), "--force-reinstall"]
    proc = _ours(python, "install", "-q", "--report", "-", *links, "six==1.16.0")
    assert json.loads(proc.stdout)["install"][0]["metadata"]["name"] == "six"
    assert "Linked" not in proc.stderr and "pip-linkmode" not in proc.stderr, proc.stderr

    proc = _ours(python, "install", *links, "six==1.16.0")
    ours = [line for line in proc.stderr.splitlines() if "WARNING" not in line]
    assert len(ours) == 1 and SHORT.fullmatch(ours[0]), proc.stderr  # one short line, no "auto chose"
    assert "Linked" not in proc.stdout and "pip-linkmode" not in proc.stdout

    proc = _ours(python, "-v", "install", *links, "six==1.16.0")
    assert "pip-linkmode: six-1.16.0: cache hit" in proc.stderr and "auto chose" in proc.stderr, proc.stderr
    proc = _ours(python, "-v", "install", *links, "--cache-dir", str(tmp_path / "cold"), "six==1.16.0")
    assert "pip-linkmode: six-1.16.0: unpacked now" in proc.stderr, proc.stderr

    proc = _ours(python, "install", "--link-mode", "copy", *links, "six==1.16.0")
    assert re.search(r"^Copied \d+ files from the cache$", proc.stderr, re.M) and "not written" not in proc.stderr, proc.stderr


def test_cache_info_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """``pip-linkmode cache info | head -2``: no BrokenPipeError."""
    read, write = os.pipe()
    os.close(read)  # the reader has gone before we write
    try:
        proc = subprocess.run([sys.executable, "-m", "pip_linkmode", "cache", "info", "--cache-dir", str(tmp_path / "c")],
                              stdout=write, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write)
    assert "BrokenPipeError" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr == ""


_NO_PIP = """
import sys
from pip_linkmode.cli import main
status = main(sys.argv[1:])
imported = sorted(m for m in sys.modules if m == "pip" or m.startswith("pip."))
print("pip modules:", imported[:5])
sys.exit(status)
"""


@pytest.mark.parametrize("command", [["venv", "-q", "--without-pip", "{dir}/env"], ["cache", "info"],
                                     ["-q", "venv", "-q", "--without-pip", "{dir}/env2"]])
def test_our_own_commands_do_not_import_pip(command: list[str], tmp_path: Path) -> None:
    """Finding the command among pip's general options takes pip's option
    table (0.3 s of imports): only where general options come first."""
    argv = [a.replace("{dir}", str(tmp_path)) for a in command]
    proc = subprocess.run([sys.executable, "-c", _NO_PIP, *argv, "--cache-dir", str(tmp_path / "c")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    expect = "pip modules: []" if not command[0].startswith("-") else "pip modules: ['pip', "
    assert expect in proc.stdout, proc.stdout


# -- pip's commands, ours, and help -------------------------------------------------


def test_pip_cache_commands_are_reachable_as_pip_cache(tmp_path: Path) -> None:
    """Ours is ``cache``; pip's is ``pip-cache``; pip's actions under ``cache``
    say where they are in one line."""
    pip_cache = tmp_path / "pipcache"
    proc = _ours(sys.executable, "pip-cache", "dir", "--cache-dir", str(pip_cache))
    assert os.path.normcase(proc.stdout.strip()) == os.path.normcase(pip_cache)
    (pip_cache / "wheels" / "x").mkdir(parents=True)
    (pip_cache / "wheels" / "x" / "old-1.0-py3-none-any.whl").write_bytes(b"")
    proc = _ours(sys.executable, "--cache-dir", str(pip_cache), "pip-cache", "purge")
    assert not (pip_cache / "wheels" / "x" / "old-1.0-py3-none-any.whl").exists(), proc.stdout + proc.stderr
    proc = _ours(sys.executable, "cache", "purge", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "pip-linkmode pip-cache purge" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _ours(sys.executable, "--cache-dir", str(tmp_path / "ours"), "cache", "dir")
    assert os.path.normcase(proc.stdout.strip()) == os.path.normcase(tmp_path / "ours")


@pytest.mark.parametrize("how", [["install", "--help"], ["help", "install"]])
def test_install_help_is_pips_plus_ours(how: list[str], pip_env: Path) -> None:
    proc = _ours(venv_python(pip_env), *how)
    assert "pip-linkmode install [options] <requirement specifier>" in proc.stdout  # pip's own help
    assert "Install Options:" in proc.stdout and "--no-deps" in proc.stdout
    for ours in ("--link-mode MODE", "PIP_LINK_MODE", "PIP_LINKMODE_CACHE_DIR", "VIRTUAL_ENV", "--no-cache-dir"):
        assert ours in proc.stdout, ours


@pytest.mark.parametrize(("topic", "start"), [("cache", "usage: pip-linkmode cache"), ("venv", "usage: pip-linkmode venv"),
                                            ("opt-in", "usage: pip-linkmode opt-in"),
                                            ("pip-cache", "\nUsage:   \n")])
def test_help_names_each_of_our_commands(topic: str, start: str) -> None:
    """``pip-linkmode help COMMAND``: our help for our commands (pip's for ``pip-cache``), status 0."""
    proc = _ours(sys.executable, "help", topic)
    assert proc.returncode == 0 and proc.stdout.startswith(start), proc.stdout + proc.stderr
    assert "ERROR" not in proc.stderr and ("cache purge" in proc.stdout) == (topic == "pip-cache"), proc.stdout


@pytest.mark.parametrize("action", ["dir", "info", "list", "verify", "clean", "prune"])
def test_every_cache_action_has_help(action: str) -> None:
    proc = _ours(sys.executable, "cache", action, "--help")
    assert proc.stdout.startswith(f"usage: pip-linkmode cache {action}")
    description = proc.stdout.split("\n\n")[1]  # argparse: usage, description, arguments
    assert not description.startswith(("options:", "optional arguments:", "positional arguments:")), proc.stdout
    assert len(description.split()) >= 6, proc.stdout


def test_version_names_pip_and_installer(pip_env: Path) -> None:
    import pip_linkmode

    proc = _ours(venv_python(pip_env), "--version")
    pip_version = subprocess.run([venv_python(pip_env), "-c", "import pip; print(pip.__version__)"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    assert proc.stdout.startswith(f"pip-linkmode {pip_linkmode.__version__} from ")
    assert re.search(r"\(pip \d+\.\d+(\.\d+)?, installer \d+\.\d+(\.\d+)?; Python 3\.\d+\.\d+\)$", proc.stdout.strip())
    assert f"(pip {pip_version}, " in proc.stdout, proc.stdout


def test_venv_without_arguments_says_dir_is_required() -> None:
    proc = _ours(sys.executable, "venv", check=False)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == "pip-linkmode venv: error: the following arguments are required: DIR"


# -- an unusable cache: one line, before pip resolves or downloads -------------------


def _refused_before_pip(cache: Path, venv: Path) -> str:
    # an index nothing listens on: had pip started, it would say "Collecting"
    proc = _ours(sys.executable, "--python", str(venv), "install", "--cache-dir", str(cache), "--index-url",
                 "http://127.0.0.1:9/simple", "--no-index", "six", check=False)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(cache) in proc.stderr
    return proc.stderr


def test_cache_through_a_regular_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    line = _refused_before_pip(tmp_path / "file" / "cache", make_venv(tmp_path / "v"))
    # (the system's words: POSIX says "Not a directory", Windows "Path not found")
    assert ("Not a directory" in line or "not found" in line) and str(tmp_path / "file") in line and "--cache-dir" in line


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="owners are POSIX file owners")
def test_cache_of_another_user_is_one_line(tmp_path: Path) -> None:
    if not IS_ROOT:
        pytest.skip("making a directory another user's needs root")
    cache = tmp_path / "theirs"
    cache.mkdir()
    os.chown(cache, 65534, 65534)
    line = _refused_before_pip(cache, make_venv(tmp_path / "v"))
    assert "owned by" in line and "--cache-dir" in line


def test_read_only_cache_is_one_line(tmp_path: Path) -> None:
    if not IS_ROOT or not sys.platform.startswith("linux") or shutil.which("mount") is None:
        pytest.skip("a read-only filesystem here is a tmpfs mounted read-only: Linux and root")
    cache = tmp_path / "ro"
    cache.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(cache)], capture_output=True).returncode:
        pytest.skip("mount -t tmpfs is not permitted here")
    try:
        line = _refused_before_pip(cache, make_venv(tmp_path / "v"))
        assert "Read-only file system" in line and "--cache-dir" in line
    finally:
        subprocess.run(["umount", str(cache)], check=True)


def test_our_options_before_a_pip_command_are_ours(tmp_path: Path) -> None:
    """``pip-linkmode --link-mode hardlink show pip``: pip runs the command without our option."""
    proc = _ours(sys.executable, "--link-mode", "hardlink", "show", "pip")
    assert "Name: pip" in proc.stdout


# -- a cold install shows progress ------------------------------------------------------


@pytest.fixture(scope="module")
def slow_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel whose unpack and compile take a while (1,500 modules)."""
    from wheelmaker import WheelSpec, build_wheel

    body = "def f(x):\n" + "    x = x + 1\n" * 60 + "    return x\n"
    files: dict[str, bytes | tuple[bytes, int]] = {f"slow/m{i:04d}.py": body.encode() for i in range(1500)}
    files["slow/__init__.py"] = b""
    return build_wheel(tmp_path_factory.mktemp("slow"), WheelSpec(name="slow", files=files))


def test_cold_install_says_each_phase_and_a_warm_one_nothing(slow_wheel: Path, tmp_path: Path) -> None:
    venv = make_venv(tmp_path / "v")
    args = ["--python", str(venv), "install", "--cache-dir", str(tmp_path / "c"), "--no-index", "--force-reinstall", str(slow_wheel)]
    # at once, not after the half second a warm pass gets: every phase, on any machine
    proc = _ours(sys.executable, *args, env={**os.environ, "_PIP_LINKMODE_PROGRESS_DELAY": "0"})
    phases = [line for line in proc.stderr.splitlines() if line.startswith("pip-linkmode:")]
    assert phases[0] == "pip-linkmode: unpacking wheels into the cache and compiling them (1 wheel)...", proc.stderr
    assert phases[-1].startswith("pip-linkmode: cache ready in ") and phases[-1].endswith("s (1 of 1 wheel unpacked now)")
    assert proc.stderr.index("cache ready") < proc.stderr.index("Linked ")
    warm = _ours(sys.executable, *args)
    assert "pip-linkmode:" not in warm.stderr, warm.stderr  # the cache had it: nothing to wait for
    quiet = _ours(sys.executable, *args[:3], "-q", "--cache-dir", str(tmp_path / "c2"), *args[5:],
                  env={**os.environ, "_PIP_LINKMODE_PROGRESS_DELAY": "0"})
    assert quiet.stderr == "", quiet.stderr


def test_cold_install_on_a_terminal_shows_pips_progress_bar(slow_wheel: Path, tmp_path: Path) -> None:
    """On a terminal: a bar drawn by pip's vendored rich (transient)."""
    if shutil.which("script") is None or not sys.platform.startswith("linux"):
        pytest.skip("needs util-linux's script(1) for a pseudo-terminal")
    import shlex

    venv = make_venv(tmp_path / "v")
    cmd = [sys.executable, "-m", "pip_linkmode", "--python", str(venv), "install", "--cache-dir", str(tmp_path / "c"),
           "--no-index", str(slow_wheel)]
    proc = subprocess.run(["script", "-qec", shlex.join(cmd), "/dev/null"], capture_output=True, text=True,
                          env={**os.environ, "TERM": "xterm", "COLUMNS": "100", "_PIP_LINKMODE_PROGRESS_DELAY": "0"})
    assert proc.returncode == 0, proc.stdout
    assert "unpacking wheels into the cache" in proc.stdout and "1/1" in proc.stdout, proc.stdout
    assert "\x1b[" in proc.stdout and "━" in proc.stdout  # rich's bar, drawn in place
    assert "pip-linkmode: cache ready" not in proc.stdout  # lines are for pipes and files
    assert (site_packages(venv) / "slow" / "m0000.py").stat().st_nlink >= 2
