"""--preview on generate and edit: images drawn on stderr only, never on stdout, never on a pipe
unless IMGEN_PREVIEW asks; with --stream each partial drawn over the one before."""

from __future__ import annotations

import base64
import re

import pytest

ESC = "\x1b"


def _kitty_images(stderr: str) -> list[str]:
    """The kitty image transmissions on stderr (each first chunk starts ESC _G with a=T)."""
    return re.findall(r"\x1b_G[^;]*a=T[^;]*;", stderr)


def test_preview_on_a_pipe_draws_nothing(imgen, outdir):
    res = imgen("generate", "-m", "gpt-image-1", "-o", str(outdir), "--preview", "a cat", env={"CI": ""})
    assert res.returncode == 0, res.stderr
    assert ESC not in res.stdout and ESC not in res.stderr
    assert len(res.lines) == 1


def test_imgen_preview_draws_each_saved_image_on_stderr_only(imgen, outdir):
    res = imgen("generate", "-m", "gpt-image-1", "-n", "2", "-o", str(outdir), "--preview", "a cat", env={"IMGEN_PREVIEW": "kitty"})
    assert res.returncode == 0, res.stderr
    assert ESC not in res.stdout and len(res.lines) == 2
    assert len(_kitty_images(res.stderr)) == 2
    first = outdir.joinpath(res.lines[0]).read_bytes()
    payload = re.search(r"\x1b_G[^;]*;([A-Za-z0-9+/=]+)\x1b\\", res.stderr).group(1)
    assert first.startswith(base64.b64decode(payload)[:64])  # the PNG itself, as saved (its first chunk)


def test_a_config_key_makes_preview_the_default_and_the_flag_turns_it_off(imgen, outdir, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[profiles.cometapi]\npreview = true\npreview_rows = 3\n")
    env = {"IMGEN_PREVIEW": "kitty", "IMGEN_CONFIG": str(config)}
    on = imgen("generate", "-m", "gpt-image-1", "-o", str(outdir), "a cat", env=env)
    off = imgen("generate", "-m", "gpt-image-1", "-o", str(outdir), "--no-preview", "a cat", env=env)
    drawn = _kitty_images(on.stderr)
    assert len(drawn) == 1 and "r=3" in drawn[0]  # a square image, so its height is what binds
    assert ESC not in off.stderr


def test_streamed_partials_are_drawn_over_each_other(imgen, outdir):
    res = imgen("generate", "-m", "gpt-image-1", "-o", str(outdir), "--stream", "--partials", "2", "--preview", "--preview-rows", "4",
                "a cat", env={"IMGEN_PREVIEW": "iterm"})
    assert res.returncode == 0, res.stderr
    images = res.stderr.count(f"{ESC}]1337;File=")
    assert images == 3  # two partials and the final image
    # each image after the first moves the cursor back up over the rows the one before took, and clears them
    assert len(re.findall(r"\x1b\[\d+A\r\x1b\[J", res.stderr)) == 2
    assert "partial 1/2" not in res.stderr  # the picture says it; no text line between two drawings
    assert ESC not in res.stdout and len(res.lines) == 1


def test_preview_with_a_batch_is_refused(imgen, outdir, tmp_path):
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("a cat\n")
    res = imgen("generate", "--batch", str(jobs), "-o", str(outdir), "--preview")
    assert res.returncode == 2 and "imgen gallery" in res.stderr


@pytest.mark.parametrize("value", ["kitty", "blocks"])
def test_edit_previews_too(imgen, outdir, tmp_path, value):
    from fakeserver import make_image

    source = tmp_path / "photo.png"
    source.write_bytes(make_image("src").to_bytes())
    res = imgen("edit", str(source), "make it night", "-m", "gpt-image-1", "-o", str(outdir), "--preview", env={"IMGEN_PREVIEW": value})
    assert res.returncode == 0, res.stderr
    assert ESC in res.stderr and ESC not in res.stdout
