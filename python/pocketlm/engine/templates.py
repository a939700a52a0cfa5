"""A model's turn templates (MediaPipe's PromptTemplates: user/model/system
prefix and suffix) read from its Jinja chat template, by rendering short
conversations with marker strings and cutting the output around them. Only
the template's own output is used: nothing here knows a model family.

A template that cannot be rendered (a missing Jinja2, an unusual template:
Phi-3.5's and Phi-4-mini's write EOS when no reply is asked for) gives None;
the engine then takes the family's turns as libpocketlm recognises them from
the template text (plm_chat_template_detect: ChatML, Qwen2/2.5, Qwen3, Gemma,
Gemma 3, Llama-3, Phi-3, Phi-4-mini, Zephyr, SOLAR), as MediaPipe's C API
does, and otherwise prompts go to the model as they are.

The C API has no Jinja: for a recognised family it writes the family's
turn markers, which equal the rendered ones (tests/model/test_chat_templates.py
checks real templates), but not a default system message a template
writes itself (Llama-3.1's date lines, for example), which only the Python
API renders.

A system turn is system_prefix + text + system_suffix in place of the
preamble; where system_prefix ends with user_prefix (Gemma 3 folds the system
text into the first user turn) that turn's prefix is not written again, as
plm_chat_template_render does.
"""

from __future__ import annotations

from dataclasses import dataclass

_U1, _A1, _U2, _S = "\x01U1\x01", "\x01A1\x01", "\x01U2\x01", "\x01S\x01"


@dataclass(frozen=True)
class TurnTemplates:
    user_prefix: str = ""
    user_suffix: str = ""
    model_prefix: str = ""
    model_suffix: str = ""
    system_prefix: str = ""
    system_suffix: str = ""
    preamble: str = ""  # text the template puts before the first turn only (e.g. a default system prompt)


def _common_suffix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[len(a) - 1 - n] == b[len(b) - 1 - n]:
        n += 1
    return a[len(a) - n:] if n else ""


def from_chat_template(template: str, bos_token: str = "", eos_token: str = "",
                       strip_bos: bool = False) -> TurnTemplates | None:
    """strip_bos: the tokenizer adds BOS itself, so a leading bos_token the
    template writes is left out of the text."""
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        return None

    def raise_exception(message):
        raise ValueError(message)

    try:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        tpl = env.from_string(template)

        def render(messages, gen):
            return tpl.render(messages=messages, add_generation_prompt=gen, bos_token=bos_token,
                              eos_token=eos_token)

        one = [{"role": "user", "content": _U1}]
        with_gen, without_gen = render(one, True), render(one, False)
        if not with_gen.startswith(without_gen):
            return None
        model_prefix = with_gen[len(without_gen):]
        three = one + [{"role": "assistant", "content": _A1}, {"role": "user", "content": _U2}]
        conv = render(three, False)
        i1, ia, i2 = conv.index(_U1), conv.index(_A1), conv.index(_U2)
        between_user_and_model = conv[i1 + len(_U1):ia]
        if not between_user_and_model.endswith(model_prefix):
            return None
        user_suffix = between_user_and_model[:len(between_user_and_model) - len(model_prefix)]
        before_first = without_gen[:without_gen.index(_U1)]
        between_model_and_user = conv[ia + len(_A1):i2]
        two = render(three[:2], False)
        model_suffix = two[two.index(_A1) + len(_A1):]  # what closes a model turn that ends the conversation
        if model_suffix and between_model_and_user.startswith(model_suffix):
            user_prefix = between_model_and_user[len(model_suffix):]
        else:
            user_prefix = _common_suffix(before_first, between_model_and_user)
            model_suffix = between_model_and_user[:len(between_model_and_user) - len(user_prefix)]
        if not before_first.endswith(user_prefix):
            return None
        preamble = before_first[:len(before_first) - len(user_prefix)]
        if strip_bos and bos_token and preamble.startswith(bos_token):
            preamble = preamble[len(bos_token):]  # the tokenizer adds BOS itself
        system_prefix = system_suffix = ""
        try:
            sys_conv = render([{"role": "system", "content": _S}] + one, False)
            s, u = sys_conv.index(_S), sys_conv.index(_U1)
            system_prefix = sys_conv[:s]
            if strip_bos and bos_token and system_prefix.startswith(bos_token):
                system_prefix = system_prefix[len(bos_token):]
            rest = sys_conv[s + len(_S):u]
            system_suffix = rest[:len(rest) - len(user_prefix)] if rest.endswith(user_prefix) else rest
        except Exception:  # noqa: BLE001 - templates that refuse a system turn (Gemma's) have none
            pass
    except Exception:  # any template we cannot render: no templates, prompts pass as they are
        return None
    return TurnTemplates(user_prefix, user_suffix, model_prefix, model_suffix, system_prefix, system_suffix,
                         preamble)
