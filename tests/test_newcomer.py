"""What a newcomer trips over, each fixed: imgen says what it changed of what was asked, names
that sort, advice for the model in use, short dry runs, readable names for any prompt."""

from __future__ import annotations

import re


def test_o_file_with_another_extension_says_what_it_saved(imgen, outdir):
    res = imgen("generate", "-m", "gpt-image-1", "-o", str(outdir / "cat.jpg"), "a cat")
    assert res.returncode == 0, res.stderr
    assert res.lines == [str(outdir / "cat.png")]
    assert "imgen: note: -o " in res.stderr and "the image is PNG, so it was saved as cat.png" in res.stderr


def test_a_name_template_without_ext_gets_one_and_says_so(imgen, outdir):
    res = imgen("generate", "-m", "gpt-image-1", "-o", str(outdir), "--name", "{time}", "a cat")
    assert res.returncode == 0, res.stderr
    (saved,) = res.lines
    assert re.fullmatch(r".*/\d{6}\.png", saved), saved
    assert "has no {ext}; .{ext} was added" in res.stderr


def test_no_download_on_a_model_that_sends_bytes_says_it_saved(imgen, outdir):
    res = imgen("generate", "-m", "gpt-image-1", "-o", str(outdir), "--no-download", "a cat")
    assert res.returncode == 0, res.stderr
    assert len(res.lines) == 1 and res.lines[0].endswith(".png")
    assert "--no-download: gpt-image-1 sent the image itself, not a URL, so it was saved" in res.stderr


def test_repeated_runs_count_on_and_sort(imgen, outdir):
    names = []
    for _ in range(3):
        res = imgen("generate", "-m", "gpt-image-1", "-o", str(outdir), "a cat")
        assert res.returncode == 0, res.stderr
        names += [p.rsplit("/", 1)[1] for p in res.lines]
    assert [re.sub(r"^\d{4}-\d\d-\d\d-", "", n) for n in names] == ["a-cat-1.png", "a-cat-2.png", "a-cat-3.png"]
    assert names == sorted(names)


def test_a_size_near_a_preset_suggests_the_nearest_one(imgen):
    res = imgen("generate", "-m", "dall-e-2", "-s", "1000x1000", "a cat", "--dry-run")
    assert res.returncode == 2
    assert "use --size 1024x1024" in res.stderr and "256x256" not in res.stderr.split("use --size")[1].split("\n")[0]
    wide = imgen("generate", "-m", "dall-e-3", "-s", "1800x1000", "a cat", "--dry-run")
    assert "use --size 1792x1024" in wide.stderr


def test_stdout_advice_is_for_the_model_in_use(imgen):
    res = imgen("generate", "-m", "dall-e-2", "-n", "2", "-o", "-", "a cat")
    assert res.returncode == 2
    assert "use -n 1 or -o DIR" in res.stderr and "--max-images" not in res.stderr


def test_a_dry_run_with_a_reference_shows_it_short_and_a_curl_that_reads_the_file(imgen, tmp_path):
    import base64
    import subprocess

    from fakeserver import make_image

    ref = tmp_path / "my ref.png"
    ref.write_bytes(make_image("ref", total=20_000).to_bytes())
    encoded = base64.b64encode(ref.read_bytes()).decode()
    res = imgen("generate", "-m", "doubao-seedream-4-0-250828", "-i", str(ref), "--dry-run", "a $HOME `cat` \\n boat")
    assert res.returncode == 0, res.stderr
    assert encoded not in res.stdout  # neither in the body shown nor in the curl command
    assert f"data:image/png;base64,{encoded[:4]}…(" in res.stdout
    curl = res.stdout[res.stdout.index("curl "):res.stdout.index("IMGEN_JSON_END\n", res.stdout.index("<<IMGEN_JSON_END") + 20) + 15]
    # What the here-doc gives curl is the exact JSON imgen would send, the file's base64 read back in.
    heredoc = curl[curl.index("<<IMGEN_JSON_END"):]
    sent = subprocess.run(["bash", "-c", "cat " + heredoc], capture_output=True, text=True, check=True).stdout
    import json

    body = json.loads(sent)
    assert body["prompt"] == "a $HOME `cat` \\n boat"
    assert body["image"] in ([f"data:image/png;base64,{encoded}"], f"data:image/png;base64,{encoded}")


def test_a_batch_dry_run_shows_the_file_names_and_the_summary_counts_images(imgen, tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"prompt": "a red fox", "n": 2}\n{"prompt": "a blue jay", "name": "jay"}\n')
    out = tmp_path / "out"
    dry = imgen("generate", "-m", "gpt-image-1", "--batch", str(jobs), "-o", str(out), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"{out}/" in dry.stdout and "a-red-fox" in dry.stdout and "-1.png, " in dry.stdout and "-2.png" in dry.stdout
    assert "jay.png" in dry.stdout and ".*" not in dry.stdout
    res = imgen("generate", "-m", "gpt-image-1", "--batch", str(jobs), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert "imgen: batch: 3 images saved by 2 jobs, 0 jobs failed, 0 skipped" in res.stderr


def test_a_piped_prompt_needs_no_dash(imgen, outdir):
    res = imgen("generate", "-m", "gpt-image-1", "-o", str(outdir), input="a fox in the snow\n")
    assert res.returncode == 0, res.stderr
    assert "a-fox-in-the-snow" in res.lines[0]
    empty = imgen("generate", "-m", "gpt-image-1", "-o", str(outdir), input="")
    assert empty.returncode == 2 and "no prompt given" in empty.stderr


def test_generate_help_has_examples_defaults_and_exit_codes(imgen):
    res = imgen("generate", "--help", env={"COLUMNS": "160"})
    assert res.returncode == 0
    text = res.stdout
    assert "Examples:" in text and 'imgen generate "a paper boat at sunrise"' in text
    assert "[default: (dall-e-3)]" in text and "[default: (1)]" in text and "[default: (300)]" in text
    assert "--n " not in text and "-n " in text
    assert "Exit codes: 0 ok, 2 usage" in text and "man imgen" in text


def test_revised_prompt_with_v(imgen, outdir):
    res = imgen("generate", "-m", "dall-e-3", "-o", str(outdir), "-v", "a lighthouse")
    assert res.returncode == 0, res.stderr
    assert "revised prompt:" in res.stderr
    quiet = imgen("generate", "-m", "dall-e-3", "-o", str(outdir), "a lighthouse")
    assert "revised prompt:" not in quiet.stderr and "imgen: cost:" not in quiet.stderr  # a pipe: no cost line


def test_completion_offers_the_values_of_the_model_typed_so_far():
    from test_completions import complete_bash

    assert complete_bash("imgen", "generate", "-m", "dall-e-3", "-Q", "") == ["standard", "hd"]
    assert set(complete_bash("imgen", "generate", "-m", "gpt-image-1", "--quality", "")) == {"low", "medium", "high", "auto"}
    assert complete_bash("imgen", "generate", "-m", "dall-e-3", "--style", "") == ["vivid", "natural"]
    assert set(complete_bash("imgen", "generate", "-m", "gpt-image-1", "--background", "")) == {"transparent", "opaque", "auto"}
    assert "webp" in complete_bash("imgen", "generate", "-m", "gpt-image-1", "--output-format", "")
    assert complete_bash("imgen", "generate", "-m", "dall-e-3", "--style", "v") == ["vivid"]
    assert "16:9" in complete_bash("imgen", "generate", "-m", "gemini-3-pro-image-preview", "--aspect", "")
    assert complete_bash("imgen", "generate", "-m", "no-such-model", "-Q", "") == []


def test_completion_offers_config_keys_after_config_set():
    from test_completions import complete_bash

    offered = complete_bash("imgen", "config", "set", "ti")
    assert offered == ["timeout"]
    assert {"model", "max_time", "preview"} <= set(complete_bash("imgen", "config", "set", ""))
