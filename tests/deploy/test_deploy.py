"""The container files: one install step for `make setup` and the images, a compose file that is valid
Compose and describes replicas behind the proxy, hadolint-clean Dockerfiles, the image test's fixture."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "deploy" / "install.sh"
DOCKERFILES = [ROOT / "Dockerfile", ROOT / "deploy" / "proxy.Dockerfile"]
BIN = Path(sys.executable).parent  # the venv's console scripts (check-jsonschema, hadolint)


def _run_lines(dockerfile: Path) -> list[str]:
    """The RUN instructions of a Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    return [line for line in text.splitlines() if line.startswith("RUN ")]


def _make_recipe(target: str) -> str:
    text = (ROOT / "Makefile").read_text()
    m = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", text, re.M)
    assert m, f"Makefile has no recipe for {target}"
    return m.group(1)


def test_make_setup_and_the_images_install_through_the_one_script():
    setup = _make_recipe("$(VENV)/.installed") + _make_recipe("system-deps")
    assert "deploy/install.sh python $(VENV) dev --editable" in setup
    assert "deploy/install.sh system runtime data dev" in setup
    runs = [r for f in DOCKERFILES for r in _run_lines(f)]
    assert any("install.sh python /opt/venv" in r for r in runs)
    assert any("install.sh system runtime" in r for r in runs)
    assert any("install.sh system proxy" in r for r in runs)
    # nothing installs packages except through the script
    for where in [(ROOT / "Makefile").read_text(), *runs, (ROOT / "deploy" / "image-test.sh").read_text()]:
        assert not re.search(r"pip3? install|apt-get install|apt install", where), where


def test_install_script_variants_name_real_extras_and_reject_unknown_input(tmp_path):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    script = INSTALL.read_text()
    for extra in re.findall(r"spec='\.\[(\w+)\]'", script):
        assert extra in extras, f"install.sh installs .[{extra}], which pyproject.toml does not define"
    # the gpu variant swaps faiss builds: the base dependencies carry faiss-cpu, the gpu extra faiss-gpu-cu12
    assert any(d.startswith("faiss-cpu") for d in project["dependencies"])
    assert any(d.startswith("faiss-gpu-cu12") for d in extras["gpu"])
    bad = subprocess.run(
        ["bash", str(INSTALL), "python", str(tmp_path / "v"), "tpu"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "unknown variant tpu" in bad.stderr
    assert not (tmp_path / "v").exists()  # checked before any venv is made
    bad = subprocess.run(["bash", str(INSTALL), "system", "gui"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown group gui" in bad.stderr


def test_install_system_names_what_it_skips_without_root(tmp_path):
    """Without root (a fake `id` answering 1000) it installs nothing and says what each package is for."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "id").write_text("#!/bin/sh\necho 1000\n")
    (fake / "dpkg").write_text("#!/bin/sh\nexit 1\n")  # nothing is installed
    for f in fake.iterdir():
        f.chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin"}
    out = subprocess.run(["bash", str(INSTALL), "system", "data"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "SKIPPED Debian packages: openclipart-svg dataset-fashion-mnist opencv-doc" in out.stdout
    assert "openclipart-svg: corpus openclipart" in out.stdout


def test_compose_file_is_valid_compose_and_runs_replicas_behind_the_proxy():
    check = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(ROOT / "docker-compose.yml"),
        ],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services, volume = compose["services"], next(iter(compose["volumes"]))
    api, proxy = services["api"], services["proxy"]
    assert api["deploy"]["replicas"] in ("${API_REPLICAS:-2}", 2)
    assert proxy["depends_on"]["api"]["condition"] == "service_healthy"
    assert services["trainer"]["profiles"] == ["trainer"] and services["indexer"]["profiles"] == ["indexer"]
    gpu = services["api-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    for name in ("api", "api-gpu", "trainer", "indexer"):
        assert services[name]["volumes"] == [f"{volume}:/data"], name
        assert services[name]["env_file"] == [{"path": ".env", "required": False}], name
    # the proxy's upstream file names the api service; both conf files it mounts exist
    for mount in proxy["volumes"]:
        src = mount.split(":")[0]
        assert (ROOT / src).is_file(), src
    assert "server api:8000" in (ROOT / "deploy/nginx/upstream-compose.conf").read_text()


def test_dockerfiles_are_hadolint_clean():
    out = subprocess.run([str(BIN / "hadolint"), *map(str, DOCKERFILES)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_seed_images_have_captions_and_cover_every_colour_and_shape(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "deploy/seed.py"), str(tmp_path), "--count", "14"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    pngs = sorted(tmp_path.glob("*.png"))
    assert len(pngs) == 14
    captions = {p.with_suffix(".txt").read_text().strip() for p in pngs}
    assert len(captions) == 12 and "a red circle" in captions  # 4 colours x 3 shapes


def test_healthcheck_and_serve_agree_on_the_port():
    """The image's HEALTHCHECK asks 127.0.0.1:$XMODAL_PORT; `xmodal serve` listens on the same variable."""
    import typer

    from app.serve import cli

    port = next(p for p in typer.main.get_command(cli).params if p.name == "port")
    assert port.envvar == "XMODAL_PORT"
    health = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if "/readyz" in line)
    assert "os.environ.get('XMODAL_PORT', '8000')" in health
