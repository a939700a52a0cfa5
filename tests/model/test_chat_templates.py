"""libpocketlm's chat-template families (plm_chat_template_detect, what
MediaPipe's C API wraps turns with) against the turns Jinja renders from the
same template (pocketlm.engine.templates, what the Python API uses), on
templates of released models."""

from pathlib import Path

import pytest

from pocketlm.engine.templates import TurnTemplates, from_chat_template

native = pytest.importorskip("pocketlm.kernels.native", reason="libpocketlm is not built")

TEMPLATES = Path(__file__).parent.parent / "fixtures" / "chat_templates"
MARKERS = ("user_prefix", "user_suffix", "model_prefix", "model_suffix")

# file, family, (bos, eos), whether C's turns equal Jinja's in full (else: turn markers only, because the
# template writes a default system message C does not render, or Jinja cannot cut it into turns)
CASES = [
    ("Qwen-Qwen2.5-7B-Instruct.jinja", "chatml", ("", "<|im_end|>"), "full"),
    ("Qwen-Qwen3-0.6B.jinja", "chatml", ("", "<|im_end|>"), "full"),
    ("google-gemma-2-2b-it.jinja", "gemma", ("<bos>", "<eos>"), "full"),
    ("meta-llama-Llama-3.2-3B-Instruct.jinja", "llama3", ("<|begin_of_text|>", "<|eot_id|>"), "markers"),
    ("microsoft-Phi-3.5-mini-instruct.jinja", "phi3", ("<s>", "<|endoftext|>"), "unrendered"),
]


@pytest.mark.parametrize("name,family,special,agreement", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("strip_bos", [True, False])
def test_c_family_gives_the_turns_jinja_renders(name, family, special, agreement, strip_bos):
    pytest.importorskip("jinja2")
    text = (TEMPLATES / name).read_text()
    found = native.chat_template_family(text, *special, strip_bos)
    assert found is not None and found[0] == family
    c = TurnTemplates(**found[1])
    rendered = from_chat_template(text, *special, strip_bos=strip_bos)
    if agreement == "unrendered":
        assert rendered is None  # the engine then uses C's turns (Engine._default_templates)
        return
    assert {m: getattr(c, m) for m in MARKERS} == {m: getattr(rendered, m) for m in MARKERS}
    if agreement == "full":
        assert c == rendered
    else:
        # Llama 3.2's "Cutting Knowledge Date" system message: Jinja renders it, C does not
        assert "Cutting Knowledge Date" in rendered.preamble and "Cutting Knowledge Date" not in c.preamble


def test_qwen_default_system_message_is_the_preamble():
    text = (TEMPLATES / "Qwen-Qwen2.5-7B-Instruct.jinja").read_text()
    _, t = native.chat_template_family(text, "", "<|im_end|>", True)
    assert t["preamble"].startswith("<|im_start|>system\nYou are Qwen") and t["preamble"].endswith("<|im_end|>\n")


@pytest.mark.parametrize("template", [
    # ChatML's markers with other separators and turn ends: wrapping it as ChatML would send other text
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + ' ' + m['content'] + '<|endoftext|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant ' }}{% endif %}",
    "{% for m in messages %}{{ '<start_of_turn>' + m['role'] + ': ' + m['content'] }}{% endfor %}",
    "{{ messages[0]['content'] }}",
    "",
])
def test_look_alike_and_unknown_templates_are_not_recognised(template):
    assert native.chat_template_family(template, "<s>", "</s>", True) is None


def test_phi35_template_gives_c_turns_in_the_engine(tmp_path):
    """Jinja cannot cut Phi-3.5's template into turns; the engine takes the family's turns."""
    from pocketlm.engine.base import _c_template_family

    text = (TEMPLATES / "microsoft-Phi-3.5-mini-instruct.jinja").read_text()
    family, t = _c_template_family(text, "<s>", "<|endoftext|>", True)
    assert family == "phi3" and t["user_prefix"] == "<|user|>\n" and t["model_prefix"] == "<|assistant|>\n"
