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
    ("Qwen-Qwen2.5-7B-Instruct.jinja", "qwen2", ("", "<|im_end|>"), "full"),
    ("Qwen-Qwen3-0.6B.jinja", "qwen3", ("", "<|im_end|>"), "full"),
    ("google-gemma-2-2b-it.jinja", "gemma", ("<bos>", "<eos>"), "full"),
    ("google-gemma-3-4b-it.jinja", "gemma3", ("<bos>", "<eos>"), "full"),
    ("meta-llama-Llama-3.2-3B-Instruct.jinja", "llama3", ("<|begin_of_text|>", "<|eot_id|>"), "markers"),
    ("microsoft-Phi-3.5-mini-instruct.jinja", "phi3", ("<s>", "<|endoftext|>"), "unrendered"),
    ("microsoft-Phi-4-mini-instruct.jinja", "phi4-mini", ("<|endoftext|>", "<|endoftext|>"), "unrendered"),
    ("upstage-SOLAR-10.7B-Instruct-v1.0.jinja", "solar", ("<s>", "</s>"), "full"),
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


# -- whole conversations: C's rendering (plm_chat_template_render) against the template's own --------------

SYSTEM = {"role": "system", "content": "Answer in one line."}
CONVERSATIONS = {
    "one turn": [{"role": "user", "content": "What is the capital of France?"}],
    "three turns": [{"role": "user", "content": "What is the capital of France?"},
                    {"role": "assistant", "content": "Paris."},
                    {"role": "user", "content": "And of Italy? Über 🍕 and 東京"}],
}
CONVERSATIONS.update({f"system, {k}": [SYSTEM] + v for k, v in list(CONVERSATIONS.items())})
RENDERED = [c for c in CASES if c[3] != "markers"]  # Llama 3.2's dated system message is Jinja's alone


def _jinja2(text, messages, special, gen):
    """The template as transformers' apply_chat_template renders it (jinja2, trim_blocks, lstrip_blocks)."""
    jinja2 = pytest.importorskip("jinja2.sandbox")

    def raise_exception(message):
        raise ValueError(message)

    env = jinja2.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(text).render(messages=messages, add_generation_prompt=gen, bos_token=special[0],
                                        eos_token=special[1])


def _minijinja(text, messages, special, gen):
    """The template as LiteRT-LM's engine (MiniJinja) renders it."""
    minijinja = pytest.importorskip("minijinja")

    def raise_exception(message):
        raise ValueError(message)

    env = minijinja.Environment(trim_blocks=True, lstrip_blocks=True)
    env.add_function("raise_exception", raise_exception)
    return env.render_str(text, messages=messages, add_generation_prompt=gen, bos_token=special[0],
                          eos_token=special[1])


@pytest.mark.parametrize("engine", [_jinja2, _minijinja], ids=["jinja2", "minijinja"])
@pytest.mark.parametrize("conversation", sorted(CONVERSATIONS))
@pytest.mark.parametrize("name,family,special,agreement", RENDERED, ids=[c[0] for c in RENDERED])
def test_c_renders_a_conversation_as_the_template_does(name, family, special, agreement, conversation, engine):
    text, messages = (TEMPLATES / name).read_text(), CONVERSATIONS[conversation]
    _, fields = native.chat_template_family(text, *special, False)
    try:
        want = engine(text, messages, special, True)
    except Exception as e:  # noqa: BLE001 - Gemma 2's refuses a system turn: so must C
        assert messages[0]["role"] == "system" and "System role not supported" in str(e)
        with pytest.raises(ValueError, match="takes no system turn"):
            native.chat_template_render(fields, messages, True)
        return
    assert native.chat_template_render(fields, messages, True) == want
    # the tokenizer adds BOS itself: the same text without it
    _, stripped = native.chat_template_family(text, *special, True)
    bos = special[0] if want.startswith(special[0]) and special[0] else ""
    assert native.chat_template_render(stripped, messages, True) == want[len(bos):]


# Qwen3's writes an empty <think> block before a reply that follows the last question, which a session never
# re-renders (the reply is the model's own tokens): only conversations that end in a question apply to it
ENDING_IN_A_REPLY = [c for c in RENDERED if c[3] == "full" and c[1] != "qwen3"]


@pytest.mark.parametrize("name,family,special,agreement", ENDING_IN_A_REPLY, ids=[c[0] for c in ENDING_IN_A_REPLY])
def test_c_renders_a_conversation_ending_in_a_reply_as_jinja(name, family, special, agreement):
    """Without a generation prompt, after a reply: what closes a model turn (SOLAR's closes none)."""
    text = (TEMPLATES / name).read_text()
    _, fields = native.chat_template_family(text, *special, False)
    messages = CONVERSATIONS["three turns"][:2]
    assert native.chat_template_render(fields, messages, False) == _jinja2(text, messages, special, False)


def test_gemma3_folds_the_system_prompt_into_the_first_user_turn():
    text = (TEMPLATES / "google-gemma-3-4b-it.jinja").read_text()
    _, fields = native.chat_template_family(text, "<bos>", "<eos>", True)
    got = native.chat_template_render(fields, CONVERSATIONS["system, three turns"], True)
    assert got == ("<start_of_turn>user\nAnswer in one line.\n\nWhat is the capital of France?<end_of_turn>\n"
                   "<start_of_turn>model\nParis.<end_of_turn>\n<start_of_turn>user\nAnd of Italy? Über 🍕 and 東京"
                   "<end_of_turn>\n<start_of_turn>model\n")


def test_qwen25_default_system_message_gives_way_to_a_given_one():
    text = (TEMPLATES / "Qwen-Qwen2.5-7B-Instruct.jinja").read_text()
    _, fields = native.chat_template_family(text, "", "<|im_end|>", True)
    assert "You are Qwen" in native.chat_template_render(fields, CONVERSATIONS["one turn"], True)
    with_system = native.chat_template_render(fields, CONVERSATIONS["system, one turn"], True)
    assert with_system.startswith("<|im_start|>system\nAnswer in one line.<|im_end|>\n") and "Qwen" not in with_system


def test_qwen3_renders_enable_thinking_at_its_default():
    """Not given, enable_thinking writes no <think> block; C renders that default (false would add an empty one)."""
    text = (TEMPLATES / "Qwen-Qwen3-0.6B.jinja").read_text()
    _, fields = native.chat_template_family(text, "", "<|im_end|>", True)
    messages = CONVERSATIONS["one turn"]
    got = native.chat_template_render(fields, messages, True)
    assert got == _jinja2(text, messages, ("", ""), True) and got.endswith("<|im_start|>assistant\n")
    jinja2 = pytest.importorskip("jinja2")
    off = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(text).render(
        messages=messages, add_generation_prompt=True, enable_thinking=False)
    assert off == got + "<think>\n\n</think>\n\n"


@pytest.mark.parametrize("messages,match", [
    ([{"role": "assistant", "content": "hi"}], "message 0 is 'assistant'"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "message 1 is 'user'"),
    ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], "message 1 is 'system'"),
    ([{"role": "tool", "content": "a"}], "message 0 is 'tool'"),
])
def test_conversations_out_of_turn_are_refused_by_position(messages, match):
    text = (TEMPLATES / "Qwen-Qwen3-0.6B.jinja").read_text()
    _, fields = native.chat_template_family(text, "", "<|im_end|>", True)
    with pytest.raises(ValueError, match=match):
        native.chat_template_render(fields, messages, True)


@pytest.mark.parametrize("template", [
    # Intel neural-chat's "### User:" turns end in one newline and strip the text: not SOLAR's
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ '### User:\n' + message['content'].strip() + "
    "'\n' }}{% elif message['role'] == 'assistant' %}{{ '### Assistant:\n'  + message['content'] + ''}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '### Assistant:\n' }}{% endif %}",
    # SOLAR's markers with the reply closed by a blank line (a converted copy): not the model's own template
    "{% for message in messages %}{% if message['role'] == 'user' %}{{'### User:\n' + message['content'].strip() +"
    "'\n\n'}}{% elif message['role'] == 'assistant' %}{{'### Assistant:\n'  + message['content'].strip() +'\n\n' }}"
    "{% endif %}{% if loop.last and add_generation_prompt %}{{ '### Assistant:\n' }}{% endif %}{% endfor %}",
    # Phi-4-mini's markers with the text trimmed and a space after the role
    "{% for message in messages %}{{ '<|' + message['role'] + '|> ' + message['content'] | trim + '<|end|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|> ' }}{% endif %}",
    # a generation prompt that opens a <think> block the replies before it do not carry
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n<think>\n' }}{% endif %}",
])
def test_look_alikes_of_the_new_families_are_not_recognised(template):
    assert native.chat_template_family(template, "<s>", "</s>", True) is None
