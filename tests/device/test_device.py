"""Device profiles: schema, memory enforcement, thread cap, speed estimate."""

import dataclasses
import json

import pytest

from pocketlm import LlmInference, LlmInferenceOptions, LlmInferenceSession, LlmInferenceSessionOptions, device
from pocketlm.device import DeviceMemoryError, estimate, list_profiles, load_profile
from pocketlm.engine.base import GenerationStats
from pocketlm.model.forward import TrafficCounters
from tests.tasks.conftest import PROMPT, model_dir  # noqa: F401 - the shared model fixture


def test_shipped_profiles_load_with_sources():
    names = list_profiles()
    assert {"low_end_4gb", "mid_range_8gb", "pixel_8", "galaxy_s23", "galaxy_s24_ultra"} <= set(names)
    for name in names:
        p = load_profile(name)
        assert 0 < p.app_memory_budget < p.ram_bytes and 1 <= p.threads <= p.cores
        assert p.memory_bandwidth_gbps > 0 and p.peak_int8_gops > p.peak_fp32_gflops > 0
        assert all(p.sources.get(k) for k in ("ram_bytes", "app_memory_budget", "memory_bandwidth_gbps"))
    assert load_profile("low_end_4gb").ram_bytes == 4 * 2**30


@pytest.mark.parametrize("edit,match", [
    (lambda d: d.pop("threads"), "threads"), (lambda d: d.update(ram_bytes=-1), "ram_bytes"),
    (lambda d: d.update(app_memory_budget=d["ram_bytes"] * 2), "larger than ram_bytes"),
    (lambda d: d.update(threads=99), "cores"), (lambda d: d.update(cpu_clusters=[{"kind": "huge"}]), "cpu_clusters"),
    (lambda d: d["sources"].pop("app_memory_budget"), "sources"), (lambda d: d.update(schema="x/9"), "schema")])
def test_malformed_profiles_are_clear_errors(tmp_path, edit, match):
    d = json.loads((device.PROFILE_DIR / "pixel_8.json").read_text())
    edit(d)
    f = tmp_path / "phone.json"
    f.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=match) as e:
        load_profile(f)
    assert str(f) in str(e.value)
    f.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_profile(f)
    with pytest.raises(ValueError, match="shipped"):
        load_profile("nokia_3310")


def _options(model_dir, max_tokens):
    return LlmInferenceOptions.builder().setModelPath(str(model_dir)).setMaxTokens(max_tokens).setTopK(1).build()


@pytest.fixture(params=["native", "python"])
def engine(request, monkeypatch):
    """Device simulation holds on both engines."""
    monkeypatch.setenv("POCKETLM_ENGINE", request.param)
    return request.param


def test_fits_the_flagship_but_not_the_4gb_phone(model_dir, engine):
    # the tiny model's F16 KV cache is 256 B a token: 8M tokens of context need ~1.9 GB
    big_context = 8_000_000
    with pytest.raises(DeviceMemoryError) as e:
        LlmInference.createFromOptions(device.context("low_end_4gb"), _options(model_dir, big_context))
    msg = str(e.value)
    assert "KV cache 1.91 GB" in msg and "1.50 GB" in msg and "maxTokens <=" in msg
    ctx = device.context("galaxy_s24_ultra")
    llm = LlmInference.createFromOptions(ctx, _options(model_dir, big_context))
    assert ctx.memory.in_use > 0
    llm.close()
    assert ctx.memory.in_use == 0


def test_allocations_are_counted_and_sessions_hold_their_kv_cache(model_dir, engine):
    ctx = device.context("pixel_8")
    with LlmInference.createFromOptions(ctx, _options(model_dir, 64)) as llm:
        base = ctx.memory.in_use
        assert llm.generateResponse(PROMPT)
        assert ctx.memory.in_use == base and ctx.memory.peak > base  # KV cache and activations came and went
        s = LlmInferenceSession.createFromOptions(llm, LlmInferenceSessionOptions.builder().setTopK(1).build())
        held = ctx.memory.in_use - base
        assert ctx.memory.parts["KV cache"] == 2 * 2 * 64 * 2 * 16 * 2  # (k, v) x layers x maxTokens x heads x dim x F16
        if engine == "native":  # the C session's own figure: KV cache and forward-pass buffers, all counted
            assert held == s._session.memory_bytes > ctx.memory.parts["KV cache"]
        clone = s.cloneSession()
        assert ctx.memory.in_use - base == 2 * held
        clone.close()
        s.close()
        assert ctx.memory.in_use == base
        assert "counted peak" in ctx.report() and "estimated on the phone" in ctx.report()


def test_a_session_past_the_budget_is_refused(model_dir, engine):
    tight = dataclasses.replace(load_profile("pixel_8"), app_memory_budget=0)
    with pytest.raises(DeviceMemoryError, match="lets an app hold"):
        LlmInference.createFromOptions(device.context(tight), _options(model_dir, 64))
    ctx = device.context("pixel_8")
    llm = LlmInference.createFromOptions(ctx, _options(model_dir, 4096))
    base = ctx.memory.in_use
    s = LlmInferenceSession.createFromOptions(llm, LlmInferenceSessionOptions.builder().setTopK(1).build())
    # room for the model and one session, not two
    ctx.memory.profile = dataclasses.replace(ctx.profile, app_memory_budget=2 * ctx.memory.in_use - base - 1)
    with pytest.raises(DeviceMemoryError, match="KV cache"):
        LlmInferenceSession.createFromOptions(llm, LlmInferenceSessionOptions.builder().setTopK(1).build())
    s.close()
    llm.close()


@pytest.mark.parametrize("backend_name", ["native", "numba"])
def test_thread_cap_is_what_the_pool_runs(model_dir, backend_name):
    from pocketlm import kernels

    backend = kernels.get_backend(backend_name)
    one = dataclasses.replace(load_profile("pixel_8"), threads=1)
    before = kernels.active_backend()
    kernels.set_backend(backend_name)
    cap_before = backend.set_max_threads(0)
    backend.set_max_threads(cap_before)
    try:
        if backend_name == "native":
            backend.reset_pool_peak()
        with LlmInference.createFromOptions(device.context(one), _options(model_dir, 64)) as llm:
            assert backend.get_num_threads() == 1
            llm.generateResponse(PROMPT * 4)
            if backend_name == "native":
                assert backend.pool_stats()["peak_threads"] == 1
        assert backend.set_max_threads(cap_before) == cap_before  # the cap in place before is restored at close
    finally:
        kernels._active = before


def _stats(weight_bytes, kv_bytes=0, flops=1, tokens=1):
    t = TrafficCounters(tokens, weight_bytes, kv_bytes, flops)
    return GenerationStats(prefill_traffic=TrafficCounters(100, weight_bytes, kv_bytes, flops * 100),
                           decode_traffic=t)


def test_estimate_is_monotone_in_bandwidth_and_model_size():
    p = load_profile("pixel_8")
    faster = dataclasses.replace(p, memory_bandwidth_gbps=p.memory_bandwidth_gbps * 2)
    small, big = _stats(500e6, flops=1e9), _stats(1000e6, flops=2e9)
    assert estimate(faster, small).decode_tokens_per_s > estimate(p, small).decode_tokens_per_s
    assert estimate(p, small).decode_tokens_per_s > estimate(p, big).decode_tokens_per_s
    e = estimate(p, small)
    assert e.decode_bound == "memory"
    assert e.decode_tokens_per_s == pytest.approx(p.memory_bandwidth_gbps * 1e9 / 500e6)
    assert e.prefill_bound == "compute" and e.time_to_first_token_s > 0


def test_estimate_from_a_real_run(model_dir, engine):
    ctx = device.context("galaxy_s23")
    with LlmInference.createFromOptions(ctx, _options(model_dir, 64)) as llm:
        llm.generateResponse(PROMPT)
        stats, llm_weights = llm.last_stats, dict(llm.engine.model.w)
    assert stats.decode_traffic.tokens > 0 and stats.decode_traffic.weight_bytes > 0
    assert stats.prefill_traffic.tokens == stats.prefill_tokens
    # every decode step reads every matrix once (the embedding by row): at least the layers' weights
    per_token = stats.decode_traffic.weight_bytes / stats.decode_traffic.tokens
    layer_bytes = sum(w.data.nbytes for n, w in llm_weights.items() if n.startswith("blk.") and hasattr(w, "data"))
    assert per_token >= layer_bytes
    e = estimate(ctx.profile, stats)
    assert e.decode_tokens_per_s > 0 and e.prefill_tokens_per_s > 0
