"""Bad arguments to `xmodal index` give one clear line, before any embedding work."""

import pytest
import typer

from index.cli import main
from training.errors import InputFileError, XModalError


def _build(model, *extra):
    return ["build", "--model", str(model), "--name", "x", "--workers", "0", "--no-progress", *extra]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give exactly one of --manifest, --corpus, --dir, --shards"),
        (["--dir", "a", "--corpus", "b"], r"exactly one of .* \(got --corpus, --dir\)"),
        (["--corpus", "not-prepared"], "corpus 'not-prepared' is not prepared"),
        (["--dir", "/nonexistent"], "--dir /nonexistent: not a directory"),
        (["--shards", "/nonexistent/x-{000..001}.tar"], "x-000.tar not found"),
    ],
)
def test_bad_sources(tiny_model_dir, extra, message):
    with pytest.raises(XModalError, match=message):
        main(_build(tiny_model_dir, *extra))


def test_bad_manifest_line_names_file_and_line(tmp_path, tiny_model_dir):
    bad = tmp_path / "m.jsonl"
    bad.write_text('{"id": "a", "path": "a.png"}\n{"id": "b"}\n')
    with pytest.raises(InputFileError, match=r"m.jsonl:2: path"):
        main(_build(tiny_model_dir, "--manifest", str(bad)))


def test_bad_factory_fails_before_embedding(image_corpus, tiny_model_dir):
    with pytest.raises(XModalError, match="bad FAISS factory string 'IVF,PQ'"):
        main(_build(tiny_model_dir, "--manifest", str(image_corpus), "--factory", "IVF,PQ"))


def test_bad_model_dir_and_numbers(tmp_path, image_corpus, tiny_model_dir):
    with pytest.raises(XModalError, match="holds none of config.json"):
        main(["build", "--model", str(tmp_path), "--name", "x", "--manifest", str(image_corpus)])
    for option in ("--batch-size", "--segment-seconds"):
        with pytest.raises(typer.BadParameter) as e:
            main(_build(tiny_model_dir, "--manifest", str(image_corpus), option, "0"))
        assert f"Invalid value for '{option}'" in e.value.format_message()
    with pytest.raises(XModalError, match="--name '../up': use a plain folder name"):
        main(["build", "--model", str(tiny_model_dir), "--name", "../up", "--manifest", str(image_corpus)])


def test_remove_and_use_errors():
    with pytest.raises(XModalError, match="index 'nope' not found"):
        main(["remove", "--name", "nope", "--ids", "a"])
    with pytest.raises(XModalError, match="expected key=value"):
        main(["remove", "--name", "nope", "--where", "oops"])
    with pytest.raises(XModalError, match="has no version 'v7'"):
        main(["use", "--name", "nope", "--version", "v7"])


def test_console_script_prints_one_line_and_exits_2(tiny_model_dir, capsys):
    """User errors exit 2 with one line; usage errors with click's usage message; never a traceback."""
    from app.cli import main as xmodal

    with pytest.raises(SystemExit) as e:
        xmodal(["index", *_build(tiny_model_dir)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: give exactly one of") and "Traceback" not in err
    with pytest.raises(SystemExit) as e:
        xmodal(["index", *_build(tiny_model_dir, "--batch-size", "0")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--batch-size'" in err and "Traceback" not in err
