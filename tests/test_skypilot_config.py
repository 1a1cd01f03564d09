"""NO_UPLOAD reaches SkyPilot's own config reader the way deploy.py sets it up, merged with the user's configs.

Each case runs in a subprocess with a throw-away HOME: SkyPilot reads its config files when `sky` is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from fleetdeploy.errors import InputError
from fleetdeploy.providers.skypilot.project_config import ENV_VAR, install_project_config

REPO = Path(__file__).resolve().parents[1]

# What the provider does before it talks to SkyPilot, then what SkyPilot itself makes of it.
PROBE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from fleetdeploy.providers.skypilot.provider import load_sky
    load_sky(Path(sys.argv[1]))
    from sky import skypilot_config
    print(json.dumps({key: skypilot_config.get_nested(tuple(key.split(".")), None) for key in sys.argv[2:]}))
    """
)


def sky_sees(home: Path, cwd: Path, *keys: str, env: dict[str, str] | None = None) -> dict[str, object]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SKYPILOT_"))}
    environ |= {"HOME": str(home), "PYTHONPATH": str(REPO), "SKYPILOT_DISABLE_USAGE_COLLECTION": "1",
                "AWS_EC2_METADATA_DISABLED": "true"} | (env or {})
    target = home / "state" / "skypilot" / "project-config.yaml"
    result = subprocess.run([sys.executable, "-c", PROBE, str(target), *keys], cwd=cwd, env=environ,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert target.stat().st_mode & 0o777 == 0o600
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def test_no_upload_without_any_user_config(home: Path, tmp_path: Path) -> None:
    assert sky_sees(home, tmp_path, "aws.remote_identity") == {"aws.remote_identity": "NO_UPLOAD"}


def test_the_users_project_config_in_the_working_directory_is_kept(home: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / ".sky.yaml").write_text(yaml.safe_dump({"aws": {"vpc_name": "edge-vpc", "labels": {"cost": "demo"}}}))
    seen = sky_sees(home, project, "aws.remote_identity", "aws.vpc_name", "aws.labels")
    assert seen == {"aws.remote_identity": "NO_UPLOAD", "aws.vpc_name": "edge-vpc", "aws.labels": {"cost": "demo"}}


def test_a_project_config_named_by_the_variable_is_kept_and_ours_wins_on_remote_identity(
    home: Path, tmp_path: Path
) -> None:
    named = tmp_path / "team-sky.yaml"
    named.write_text(yaml.safe_dump({"aws": {"remote_identity": "LOCAL_CREDENTIALS", "vpc_name": "team-vpc"}}))
    seen = sky_sees(home, tmp_path, "aws.remote_identity", "aws.vpc_name", env={ENV_VAR: str(named)})
    assert seen == {"aws.remote_identity": "NO_UPLOAD", "aws.vpc_name": "team-vpc"}


def test_the_users_global_config_cannot_turn_uploads_back_on(home: Path, tmp_path: Path) -> None:
    (home / ".sky").mkdir()
    (home / ".sky" / "config.yaml").write_text(yaml.safe_dump({"aws": {"remote_identity": "LOCAL_CREDENTIALS"}}))
    assert sky_sees(home, tmp_path, "aws.remote_identity") == {"aws.remote_identity": "NO_UPLOAD"}


def test_a_missing_named_project_config_is_bad_input(tmp_path: Path) -> None:
    environ = {ENV_VAR: str(tmp_path / "nope.yaml")}
    with pytest.raises(InputError, match="SKYPILOT_PROJECT_CONFIG=.*file not found"):
        install_project_config(tmp_path / "out.yaml", environ, tmp_path)
    assert not (tmp_path / "out.yaml").exists()


def test_installing_twice_in_one_process_keeps_the_users_settings(tmp_path: Path) -> None:
    (tmp_path / ".sky.yaml").write_text(yaml.safe_dump({"aws": {"vpc_name": "v"}}))
    environ: dict[str, str] = {}
    target = tmp_path / "state" / "project.yaml"
    install_project_config(target, environ, tmp_path)
    install_project_config(target, environ, tmp_path)
    assert environ[ENV_VAR] == str(target)
    assert yaml.safe_load(target.read_text()) == {"aws": {"vpc_name": "v", "remote_identity": "NO_UPLOAD"}}
