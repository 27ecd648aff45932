"""The model card: README.md is rendered from card.json alone, and its training commands read as steps."""
from __future__ import annotations

import importlib.util
import json
import re

import pytest

from boneage.paths import MODELS_DIR, REPO_ROOT


def _script():
    spec = importlib.util.spec_from_file_location("make_model_card", REPO_ROOT / "scripts" / "make_model_card.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def shipped():
    if not (MODELS_DIR / "card.json").is_file():
        pytest.skip("no card.json in models/")
    return json.loads((MODELS_DIR / "card.json").read_text()), json.loads((MODELS_DIR / "meta.json").read_text())


def test_shipped_readme_is_what_the_card_renders(shipped):
    """models/README.md is up to date: `make_model_card.py --from-card models` would not change it."""
    card, meta = shipped
    assert _script().render_readme(card, meta) == (MODELS_DIR / "README.md").read_text()


def test_training_commands_are_numbered_steps_that_rejoin_exactly(shipped):
    card, meta = shipped
    text = _script().render_readme(card, meta)
    training = text.split("\n## Training\n", 1)[1].split("\n## ", 1)[0]  # the phases (an ensemble's members come later)
    blocks = re.findall(r"```bash\n(.*?)```", training, flags=re.S)
    commands = card["training"]["command"]
    assert len(blocks) == len(commands)
    for block, cmd in zip(blocks, commands):
        lines = [ln.strip() for ln in block.strip().splitlines()]
        assert all(len(ln) <= 92 for ln in lines), "unreadably long line"
        assert " ".join(ln.rstrip("\\").strip() for ln in lines) == cmd  # copy-paste runs the same command
    for i in range(len(commands)):
        assert f"{i + 1}. **Phase {i + 1}**" in text


def test_command_lines_wrap_only_between_options():
    out = _script().command_lines("boneage train --data d --out o " + " ".join(f"--opt{i} {i}" for i in range(30)), 40)
    lines = out.splitlines()
    assert len(lines) > 3 and all(ln.endswith(" \\") for ln in lines[:-1])
    assert all(ln.strip().startswith("--") for ln in lines[1:])


def test_an_ensemble_card_names_every_member_with_its_command_and_checksum(shipped):
    card, meta = json.loads(json.dumps(shipped[0])), dict(shipped[1])
    cmd = "boneage train --data d --out runs/m2 --backbone efficientnet_lite0 --seed 7 --init-from runs/p6"
    card["ensemble"] = [{"file": "member-1.keras", "run": "runs/m2", "val_mae_no_tta": 9.7, "train_minutes": 55.0,
                         "command": [cmd], "sha256": "ab" * 32}]
    card["sha256"]["member-1.keras"] = "ab" * 32
    text = _script().render_readme(card, meta)
    ens = text.split("\n## Ensemble\n", 1)[1].split("\n## ", 1)[0]
    assert "2 networks" in ens and "`member-1.keras`: validation MAE 9.70" in ens and "55 min" in ens
    block = re.findall(r"```bash\n(.*?)```", ens, flags=re.S)[0]
    assert " ".join(ln.strip().rstrip("\\").strip() for ln in block.strip().splitlines()) == cmd
    assert f"- `member-1.keras` sha256 `{'ab' * 32}`" in text
    test_training_commands_are_numbered_steps_that_rejoin_exactly((card, meta))  # the phases still rejoin
