"""The JAX Xylo emulator against xylosim 0.1.3 (Rockpool 3.1.0 ``XyloSim``): every recorded array equal.

Property tests draw random networks (v1/v2, all four variants, saturation, aliases, bias, weight shifts incl. the
>= 9 wrap, dashes 0 and >= 16, thresholds <= 0, IMU's single synapse and IEN/OEN expansion) and compare with the
vendor simulator; the fast set runs in CI, the ``slow`` set (>= 1000 networks) before resolving an issue.
Hand-written tests pin the edge cases of xylo.md with values derived there; golden traces need no Rockpool.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xylo_ref import make_reference, reference_available, require_reference

from snn_deploy.sim import xylo_ops
from snn_deploy.sim.xylo import (
    XyloEmulator,
    XyloHardwareLimitError,
    XyloInputError,
    XyloSpec,
    XyloSpecError,
    evolve,
    initial_state,
)

GOLDEN = Path(__file__).parent / "golden"
T_STEPS = 24
SHAPES = [(3, 8, 2), (16, 20, 4)]  # (Nin, Nh, Nout): few shapes keep the number of compilations small
VARIANT_CHOICES = ["syns61300", "syns61201", "syns63300", "syns65302"]


# --- random networks -------------------------------------------------------------------------------------------


def random_spec(
    rng: np.random.Generator, *, variant: str, shape: tuple[int, int, int], regime: dict
) -> XyloSpec:
    """A random network in the given regime (see the strategy below for the keys)."""
    n_in, n_h, n_out = shape
    version = "v1" if variant == "syns61300" else "v2"
    one_syn = variant == "syns63300"
    ien = n_h if not regime["expansion"] else int(rng.integers(1, n_h + 1))
    oen = n_h if not regime["expansion"] else int(rng.integers(1, n_h + 1))
    lim = 128 if regime["saturate"] else 40

    def weights(shape_, density):
        w = rng.integers(-lim, lim, shape_)
        if regime["saturate"]:
            w = np.where(rng.random(shape_) < 0.3, rng.choice([-128, 127], shape_), w)
        return w * (rng.random(shape_) < density)

    w_in = weights((n_in, ien, 2), 0.7)
    w_rec = weights((n_h, n_h, 2), 0.3)
    if one_syn:
        w_in, w_rec = w_in[:, :, :1], w_rec[:, :, :1]

    def dashes(n):
        if regime["dash"] == "edge":
            return rng.choice([0, 1, 2, 15, 16, 20, 31], n)
        return rng.integers(1, 9, n)

    def thresholds(n, scale):
        if regime["thr"] == "small":
            return rng.integers(1, 60, n)
        if regime["thr"] == "nonpos":
            return np.where(rng.random(n) < 0.5, rng.integers(-30000, 1, n), rng.integers(1, scale, n))
        return rng.integers(1, scale, n)

    def shift():
        return int(rng.integers(8, 21)) if regime["wrap_shift"] else int(rng.integers(0, 8))

    if regime["aliases"] == "none":
        aliases = None
    elif regime["aliases"] == "chain":
        aliases = [[i + 1] if i + 1 < n_h and rng.random() < 0.8 else [] for i in range(n_h)]
    else:  # random: forward, backward, self, sometimes several targets
        aliases = [list(rng.integers(0, n_h, int(rng.choice([0, 0, 1, 2])))) for _ in range(n_h)]
    bias = version == "v2" and regime["bias"]
    return XyloSpec(
        weights_in=w_in,
        weights_rec=w_rec,
        weights_out=weights((oen, n_out), 0.8),
        dash_mem=dashes(n_h),
        dash_syn=dashes(n_h),
        dash_syn_2=dashes(n_h),
        dash_mem_out=dashes(n_out),
        dash_syn_out=dashes(n_out),
        threshold=thresholds(n_h, 4000),
        threshold_out=thresholds(n_out, 4000),
        bias=rng.integers(-300, 300, n_h) if bias else None,
        bias_out=rng.integers(-300, 300, n_out) if bias else None,
        weight_shift_in=shift(),
        weight_shift_rec=shift(),
        weight_shift_out=shift(),
        aliases=aliases,
        version=version,
        variant=variant,
    )


def random_input(rng: np.random.Generator, spec: XyloSpec, regime: dict, batch: int = 2) -> np.ndarray:
    hi = 256 if regime["saturate"] else 4
    x = rng.integers(0, hi, (batch, T_STEPS, spec.n_in)) * (rng.random((batch, T_STEPS, spec.n_in)) < 0.5)
    if regime["few_channels"]:
        x = x[..., : max(1, spec.n_in - 2)]  # XyloSim accepts fewer channels than Nin
    return x


REGIMES = st.fixed_dictionaries(
    {
        "expansion": st.booleans(),
        "saturate": st.booleans(),
        "dash": st.sampled_from(["normal", "edge"]),
        "thr": st.sampled_from(["positive", "small", "nonpos"]),
        "wrap_shift": st.booleans(),
        "aliases": st.sampled_from(["none", "chain", "random"]),
        "bias": st.booleans(),
        "few_channels": st.booleans(),
    }
)


def assert_matches_reference(spec: XyloSpec, x: np.ndarray, **kw) -> None:
    """Emulator (batched) == XyloSim (sample by sample, reset in between): output and every record array."""
    out, _, rec = evolve(spec, x, record=True, **kw)
    ref = make_reference(spec, kw.get("output_mode", "Spike"))
    for i in range(x.shape[0]):
        ref.reset_state()
        out_r, _, rec_r = ref.evolve(x[i], record=True)
        assert set(rec) == set(rec_r), (set(rec), set(rec_r))
        np.testing.assert_array_equal(np.asarray(out[i]), out_r, err_msg=f"output, sample {i}, {spec}")
        for key, val in rec_r.items():
            np.testing.assert_array_equal(np.asarray(rec[key][i]), val, err_msg=f"{key}, sample {i}, {spec}")


def _property(seed: int, variant: str, shape_i: int, regime: dict, **kw) -> None:
    rng = np.random.default_rng(seed)
    spec = random_spec(rng, variant=variant, shape=SHAPES[shape_i], regime=regime)
    assert_matches_reference(spec, random_input(rng, spec, regime), **kw)


NETWORK = dict(
    seed=st.integers(0, 2**32 - 1),
    variant=st.sampled_from(VARIANT_CHOICES),
    shape_i=st.integers(0, len(SHAPES) - 1),
    regime=REGIMES,
)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(**NETWORK)
def test_random_networks_auto(seed, variant, shape_i, regime):
    require_reference()
    _property(seed, variant, shape_i, regime)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**NETWORK, impl=st.sampled_from(["scan", "tree"]))
def test_random_networks_exact(seed, variant, shape_i, regime, impl):
    require_reference()
    _property(seed, variant, shape_i, regime, delivery="exact", exact_impl=impl)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**NETWORK, delivery=st.sampled_from(["auto", "exact"]), impl=st.sampled_from(["scan", "tree"]))
def test_random_networks_slow(seed, variant, shape_i, regime, delivery, impl):
    require_reference()
    _property(seed, variant, shape_i, regime, delivery=delivery, exact_impl=impl)


# --- integer primitives ------------------------------------------------------------------------------------------


def test_decay_rounding():
    f = lambda v, d: int(xylo_ops.decayed(jnp.int32(v), jnp.int32(d)))  # noqa: E731
    assert f(17, 4) == 16 and f(-17, 4) == -15  # positives lose >= 1, negatives move by ceil(|x|/2^d)
    for d in range(32):
        assert f(1, d) == 0 and f(-1, d) == 0 and f(0, d) == 0
    assert f(12345, 0) == 0 and f(-32768, 0) == 0  # dash 0 zeroes
    assert f(1000, 16) == 999 and f(-1000, 20) == -999  # dash >= 16: linear decay by 1


def test_membrane_v1_v2_and_wrap():
    def m(v, s, d, b, ver):
        return int(xylo_ops.membrane(jnp.int32(v), jnp.int32(s), jnp.int32(d), jnp.int32(b), ver))

    # xylo.md 3: v = -30000, S = +40000 (dash 31 decays by 1): v1 clamps the sum, v2 the increment first.
    assert m(-30000, 40000, 31, 0, "v1") == 10001
    assert m(-30000, 40000, 31, 0, "v2") == -30000 + 32767
    # v2, v = -32768, dash 0: -decay wraps to -32768, so the membrane is stuck; v1 zeroes it.
    assert m(-32768, 0, 0, 0, "v2") == -32768 and m(-32768, 0, 0, 0, "v1") == 0
    assert m(0, 0, 4, 100, "v2") == 100 and m(32767, 0, 31, 5, "v2") == 32767


_fire = jax.jit(lambda v, thr, n0, nonpos: xylo_ops.fire(v, thr, n0, 31, nonpos), static_argnums=3)
_folds = jax.jit(lambda x, a: (xylo_ops.fold_tree(x, a), xylo_ops.fold_scan(x, a)))


@settings(max_examples=200, deadline=None)
@given(
    v=st.integers(-32768, 32767),
    thr=st.integers(-32768, 32767),
    n0=st.integers(0, 31),
)
def test_fire_matches_spike_loop(v, thr, n0):
    n, vv = n0, v
    while vv >= thr and n < 31:  # the C++ loop, with int16 truncation of `v_mem -= v_th`
        n, vv = n + 1, ((vv - thr + 32768) % 65536) - 32768
    got_n, got_v = _fire(jnp.int32(v), jnp.int32(thr), jnp.int32(n0), True)
    assert (int(got_n), int(got_v)) == (n, vv)
    if thr > 0:
        got_n, got_v = _fire(jnp.int32(v), jnp.int32(thr), jnp.int32(n0), False)
        assert (int(got_n), int(got_v)) == (n, vv)


@settings(max_examples=60, deadline=None)
@given(
    x=st.integers(-32768, 32767),
    a=st.lists(st.integers(-31 * 32768, 31 * 32767), min_size=1, max_size=40),
)
def test_fold_tree_and_scan_equal_sequential_saturation(x, a):
    y = x
    for ai in a:
        y = min(max(y + ai, -32768), 32767)
    padded = np.zeros((40, 1), np.int32)  # fixed shape: one compilation; trailing zero adds are identities
    padded[: len(a), 0] = a
    tree, scan = _folds(jnp.int32([x]), jnp.asarray(padded))
    assert int(tree[0]) == y and int(scan[0]) == y
    odd = jnp.asarray(np.array(a, np.int32)[:, None])  # odd lengths exercise the carried element of the tree
    assert int(xylo_ops.fold_tree(jnp.int32([x]), odd)[0]) == y


# --- hand-written edge cases --------------------------------------------------------------------------------------


def _one_neuron_order_spec(w0: int, w1: int) -> XyloSpec:
    return XyloSpec(
        weights_in=np.array([[w0], [w1]]),
        weights_out=np.zeros((1, 1), int),
        dash_syn=[15],
        dash_mem=[1],
        threshold=[32767],
        weight_shift_in=7,
    )


@pytest.mark.parametrize("delivery", ["auto", "exact"])
def test_delivery_order_example(delivery):
    """xylo.md 4.1: 15 spikes of +127 then -128 (shift 7) end at -32767; reversed at +32766 (after decay 15)."""
    x = np.array([[15, 15]])
    _, _, rec = evolve(_one_neuron_order_spec(127, -128), x, delivery=delivery)
    assert int(rec["Isyn"][0, 0]) == -32767
    _, _, rec = evolve(_one_neuron_order_spec(-128, 127), x, delivery=delivery)
    assert int(rec["Isyn"][0, 0]) == 32766
    if reference_available()[0]:
        for w in ((127, -128), (-128, 127)):
            assert_matches_reference(_one_neuron_order_spec(*w), x[None])


def _chain_spec(**over) -> XyloSpec:
    """Input 0 -> hidden 0 -> hidden 1 -> output 0 (and hidden 0 -> output 1); one spike per step thresholds."""
    kw = dict(
        weights_in=np.array([[100, 0, 0]]),
        weights_rec=np.array([[0, 100, 0], [0, 0, 0], [0, 0, 0]]),
        weights_out=np.array([[0, 100], [100, 0], [0, 0]]),
        dash_syn=[1, 1, 1],
        dash_mem=[1, 1, 1],
        dash_syn_out=[1, 1],
        dash_mem_out=[1, 1],
        threshold=[40, 40, 30000],
        threshold_out=[40, 40],
    )
    kw.update(over)
    return XyloSpec(**kw)


def test_latencies():
    """Input -> hidden in the same step; hidden -> hidden and hidden -> output one step later each."""
    spec = _chain_spec()
    x = np.zeros((6, 1), int)
    x[0, 0] = 1
    out, _, rec = evolve(spec, x)
    spikes = np.asarray(rec["Spikes"])
    assert spikes[0, 0] == 1 and spikes[:, 0].sum() == 1  # w=100, ds=1: Isyn 50 >= 40 fires at t=0
    assert spikes[1, 1] == 1 and spikes[:, 1].sum() == 1  # hidden 0 -> hidden 1 at t=1
    out = np.asarray(out)
    assert out[1, 1] == 1 and out[:, 1].sum() == 1  # hidden 0 -> output 1 at t=1
    assert out[2, 0] == 1 and out[:, 0].sum() == 1  # hidden 1 -> output 0 at t=2
    if reference_available()[0]:
        assert_matches_reference(spec, x[None])


def test_multi_spike_and_thresholds():
    """thr 0 fires 31 per step; small thr fires floor(v / thr) capped at 31; thr < 0 runs the wrapping loop."""
    spec = _chain_spec(threshold=[0, 7, -20000], weight_shift_in=4)
    x = np.full((5, 1), 15)
    _, _, rec = evolve(spec, x)
    spikes = np.asarray(rec["Spikes"])
    assert (spikes[:, 0] == 31).all()
    assert spikes[1:, 1].max() == 31 and spikes[0, 1] == 0
    if reference_available()[0]:
        assert_matches_reference(spec, x[None])


def test_vmem_stuck_at_minimum_in_v2_only():
    """xylo.md 3: in v2 a membrane at -32768 with dash_mem 0 stays there; v1 releases it."""
    common = dict(
        weights_in=np.array([[[-128, -128]]]),  # both synapses: S = -65536 saturates dv at -32768
        weights_out=np.zeros((1, 1), int),
        dash_syn=[1],
        dash_syn_2=[1],
        dash_mem=[0],
        threshold=[1000],
        weight_shift_in=8,
    )
    x = np.zeros((30, 1), int)
    x[0] = 15
    v2 = np.asarray(evolve(XyloSpec(**common), x)[2]["Vmem"])[:, 0]
    v1 = np.asarray(evolve(XyloSpec(**common, version="v1"), x)[2]["Vmem"])[:, 0]
    assert (v2 == -32768).all()
    assert v1[0] == -32768 and v1[-1] == 0
    if reference_available()[0]:
        assert_matches_reference(XyloSpec(**common), x[None])
        assert_matches_reference(XyloSpec(**common, version="v1"), x[None])


def test_aliases_chain_backward_self():
    """Forward chain 0 -> 1 -> 2 acts in the same step; backward 3 -> 1 and self 2 -> 2 add after, capped at 31."""
    n = 4
    spec = XyloSpec(
        weights_in=np.array([[60, 0, 0, 60]]),
        weights_out=np.zeros((n, 1), int),
        dash_syn=[1] * n,
        dash_mem=[1] * n,
        threshold=[10, 32767, 32767, 10],
        aliases=[[1], [2], [2], [1]],
    )
    x = np.zeros((3, 1), int)
    x[0] = 1
    _, _, rec = evolve(spec, x)
    s = np.asarray(rec["Spikes"])[0]
    # neuron 0 fires 3 (v = 30 -> thr 10), neuron 3 fires 3; 1 gets 3 (fwd) + 3 (bwd); 2 gets 3 then self 3 + 3.
    assert s.tolist() == [3, 6, 6, 3]
    if reference_available()[0]:
        assert_matches_reference(spec, x[None])


def test_state_carries_over_and_batch_equals_loop():
    rng = np.random.default_rng(3)
    regime = dict(
        expansion=False, saturate=True, dash="normal", thr="small", wrap_shift=False, aliases="random"
    )
    regime.update(bias=True, few_channels=False)
    spec = random_spec(rng, variant="syns61201", shape=SHAPES[0], regime=regime)
    x = random_input(rng, spec, regime, batch=3)
    out, final, rec = evolve(spec, x)
    # two calls with the state handed over == one call
    out_a, st_a, rec_a = evolve(spec, x[:, :12])
    out_b, st_b, rec_b = evolve(spec, x[:, 12:], st_a)
    np.testing.assert_array_equal(np.concatenate([out_a, out_b], axis=1), out)
    for k in rec:
        np.testing.assert_array_equal(np.concatenate([rec_a[k], rec_b[k]], axis=1), rec[k])
    for a, b in zip(st_b, final, strict=True):
        np.testing.assert_array_equal(a, b)
    # batch == per-sample loop
    for i in range(x.shape[0]):
        o_i, s_i, r_i = evolve(spec, x[i])
        np.testing.assert_array_equal(o_i, out[i])
        for k in rec:
            np.testing.assert_array_equal(r_i[k], rec[k][i])
        np.testing.assert_array_equal(s_i.vmem, final.vmem[i])
    # the stateful wrapper behaves like XyloSim across calls (state persists until reset_state)
    emu = XyloEmulator(spec)
    emu.evolve(x[0, :12], record=True)
    o2, _, r2 = emu.evolve(x[0, 12:], record=True)
    np.testing.assert_array_equal(o2, out[0, 12:])
    if reference_available()[0]:
        ref = make_reference(spec)
        ref.evolve(x[0, :12])
        o_r, _, r_r = ref.evolve(x[0, 12:], record=True)
        np.testing.assert_array_equal(o2, o_r)
        for k, v in r_r.items():
            np.testing.assert_array_equal(r2[k], v)
        ref.reset_state()
        emu.reset_state()
        np.testing.assert_array_equal(emu.evolve(x[1], record=True)[0], ref.evolve(x[1])[0])
    z = initial_state(spec, 2)
    assert z.vmem.shape == (2, spec.n_hidden) and int(jnp.abs(z.isyn).sum()) == 0


@pytest.mark.parametrize("mode", ["Vmem", "Isyn"])
def test_output_modes(mode):
    require_reference()
    rng = np.random.default_rng(7)
    regime = dict(
        expansion=True, saturate=False, dash="normal", thr="positive", wrap_shift=False, aliases="none"
    )
    regime.update(bias=False, few_channels=False)
    spec = random_spec(rng, variant="syns65302", shape=SHAPES[0], regime=regime)
    assert_matches_reference(spec, random_input(rng, spec, regime), output_mode=mode)


def test_imu_records_no_isyn2_and_hardware_limits():
    rng = np.random.default_rng(5)
    regime = dict(
        expansion=True, saturate=False, dash="normal", thr="positive", wrap_shift=False, aliases="none"
    )
    regime.update(bias=False, few_channels=False)
    spec = random_spec(rng, variant="syns63300", shape=SHAPES[0], regime=regime)
    _, _, rec = evolve(spec, random_input(rng, spec, regime))
    assert "Isyn2" not in rec and set(rec) == {"Vmem", "Isyn", "Spikes", "Vmem_out", "Isyn_out"}
    spec.check_hardware()
    two_syn = XyloSpec(
        weights_in=np.ones((2, 3, 2), int), weights_out=np.ones((3, 1), int), variant="syns63300"
    )
    with pytest.raises(XyloHardwareLimitError, match="synapses per hidden neuron"):
        two_syn.check_hardware()
    big = XyloSpec(
        weights_in=np.ones((17, 200), int), weights_out=np.ones((130, 1), int), variant="syns65302"
    )
    msgs = " ".join(big.hardware_violations())
    assert "inputs: 17 > 16" in msgs and "(IEN): 200 > 128" in msgs and "(OEN): 130 > 128" in msgs
    shifted = XyloSpec(weights_in=np.ones((1, 1), int), weights_out=np.ones((1, 1), int), weight_shift_rec=9)
    assert any("weight_shift_rec: 9 > 7" in m for m in shifted.hardware_violations())


# --- validation, files, golden traces -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("over", "field"),
    [
        (dict(weights_in=np.full((1, 2), 128)), "weights_in"),
        (dict(weights_in=np.ones((1, 2)) * 0.5), "weights_in"),
        (dict(dash_mem=[0, 32]), "dash_mem"),
        (dict(threshold=[0, 40000]), "threshold"),
        (dict(weight_shift_out=32), "weight_shift_out"),
        (dict(aliases=[[2], []]), "aliases"),
        (dict(bias=[1, 0], version="v1"), "bias"),
        (dict(weights_out=np.ones((3, 1), int)), "weights_out"),
        (dict(version="v1", variant="syns61201"), "version"),
    ],
)
def test_spec_validation_names_field(over, field):
    kw = dict(weights_in=np.ones((1, 2), int), weights_out=np.ones((2, 1), int))
    kw.update(over)
    with pytest.raises(XyloSpecError) as err:
        XyloSpec(**kw)
    assert err.value.param == field and field in str(err.value)


def test_input_validation():
    spec = _chain_spec()
    with pytest.raises(XyloInputError, match="not integer"):
        evolve(spec, np.zeros((3, 1)))
    with pytest.raises(XyloInputError, match="outside 0..255"):
        evolve(spec, np.full((3, 1), 256))
    with pytest.raises(XyloInputError, match="input channels"):
        evolve(spec, np.zeros((3, 2), int))
    with pytest.raises(XyloInputError, match="output_mode"):
        evolve(spec, np.zeros((3, 1), int), output_mode="Bogus")


def test_npz_roundtrip(tmp_path):
    rng = np.random.default_rng(11)
    regime = dict(expansion=True, saturate=True, dash="edge", thr="nonpos", wrap_shift=True, aliases="random")
    regime.update(bias=True, few_channels=False)
    spec = random_spec(rng, variant="syns65302", shape=SHAPES[0], regime=regime)
    path = tmp_path / "spec.npz"
    spec.to_npz(path)
    back = XyloSpec.from_npz(path)
    assert back.aliases == spec.aliases and (back.version, back.variant) == (spec.version, spec.variant)
    for k, v in spec.from_specification_kwargs().items():
        if k != "aliases":
            np.testing.assert_array_equal(np.asarray(getattr(back, k)), np.asarray(v), err_msg=k)
    spec.to_npz(tmp_path / "again.npz")
    assert path.read_bytes() == (tmp_path / "again.npz").read_bytes()  # deterministic
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.npz", "spec.npz"]  # no temp files left
    x = random_input(rng, spec, regime)
    np.testing.assert_array_equal(evolve(spec, x)[0], evolve(back, x)[0])


@pytest.mark.parametrize("variant", VARIANT_CHOICES)
def test_golden_traces(variant):
    """Traces generated by XyloSim (tests/golden/make_xylo_golden.py); needs no Rockpool."""
    spec_path = GOLDEN / f"xylo_{variant}_spec.npz"
    if not spec_path.exists():
        pytest.skip(f"{spec_path} missing; run tests/golden/make_xylo_golden.py")
    spec = XyloSpec.from_npz(spec_path)
    with np.load(GOLDEN / f"xylo_{variant}_trace.npz") as z:
        trace = dict(z)
    keys = {k[4:] for k in trace if k.startswith("rec_")}
    for delivery in ("auto", "exact"):
        out, _, rec = evolve(spec, trace["input"], delivery=delivery)
        np.testing.assert_array_equal(np.asarray(out), trace["output"])
        assert keys == set(rec)
        for k in keys:
            np.testing.assert_array_equal(
                np.asarray(rec[k]), trace[f"rec_{k}"], err_msg=f"{variant} {k} {delivery}"
            )


# --- fast-path machinery: exact GEMM, delivery branches, sharding ------------------------------------------------


def test_count_dot_exact_at_the_extremes():
    """bfloat16 x bfloat16 -> float32 GEMM is exact for counts <= 31, int8 weights and 16 + 1000 sources."""
    rng = np.random.default_rng(0)
    p_src = 16 + 1000
    counts = np.full((3, p_src), 31, np.int64)
    counts[1] = rng.integers(0, 32, p_src)
    counts[2, ::2] = 0
    w = np.stack([np.full(p_src, -128), np.full(p_src, 127), rng.integers(-128, 128, p_src)], axis=1)
    w = np.concatenate([w, rng.integers(-128, 128, (p_src, 5))], axis=1)
    got = np.asarray(jax.jit(xylo_ops.count_dot)(jnp.asarray(counts, jnp.int8), jnp.asarray(w, jnp.int8)))
    np.testing.assert_array_equal(got, counts @ w)
    assert got[0, 0] == -31 * 128 * p_src  # -4 032 512: far beyond int16, exactly representable
    with pytest.raises(ValueError, match="at most"):
        xylo_ops.count_dot(jnp.zeros((1, 5000), jnp.int8), jnp.zeros((5000, 1), jnp.int8))


def test_count_dot_integer_path_for_accelerators(monkeypatch):
    """Off CPU, count_dot is an int8 x int8 -> int32 dot; run that path here (traced as if on a GPU)."""
    rng = np.random.default_rng(1)
    counts, w = rng.integers(0, 32, (4, 300)), rng.integers(-128, 128, (300, 7))
    monkeypatch.setattr(xylo_ops.jax, "default_backend", lambda: "gpu")
    got = xylo_ops.count_dot(jnp.asarray(counts, jnp.int8), jnp.asarray(w, jnp.int8))
    assert got.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(got), counts @ w)


def _sequential_delivery(x: np.ndarray, counts: np.ndarray, w_eff: np.ndarray) -> np.ndarray:
    """xylosim's deliver_spikes for a batch: one saturating add per source, sources in index order."""
    y = x.astype(np.int64)
    for p_i in range(w_eff.shape[0]):
        y = np.clip(y + counts[:, p_i, None] * w_eff[p_i][None, :], -32768, 32767)
    return y


def _delivery_case(
    rng: np.random.Generator, n_big: int, hot: bool, n_h: int = 20, n_out: int = 4, batch: int = 6
):
    """Background weights in -1..1 and counts 0..3 (sums of a few hundred) plus ``n_big`` sources that send 31
    spikes of weight 127 (shift 3: 31 * 1016 = 31 496) to one distinct target each. The targets of the big sources
    sit at 32 000 when ``hot`` (so they may saturate: risky) and at 0 otherwise (their sums stay in range)."""
    n_in = 5
    n_src, u = n_in + n_h, 2 * n_h + n_out
    w = rng.integers(-1, 2, (n_src, u))
    w[:n_in, 2 * n_h :] = 0  # inputs do not reach the readout
    counts = rng.integers(0, 4, (batch, n_src))
    x = rng.integers(-2000, 2000, (batch, u))
    srcs = rng.choice(np.arange(n_in, n_src), n_big, replace=n_big > n_h)  # hidden sources reach all targets
    tgts = rng.choice(u, n_big, replace=False)
    w[srcs] = np.where(w[srcs] > 0, 0, w[srcs])  # keep the big sources' other weights <= 0
    w[srcs, tgts] = 127
    counts[:, srcs] = 31
    x[:, tgts] = 32000 if hot else 0
    ww_in = w[:n_in, : 2 * n_h].reshape(n_in, 2, n_h).transpose(0, 2, 1)
    ww_rec = w[n_in:, : 2 * n_h].reshape(n_h, 2, n_h).transpose(0, 2, 1)
    spec = XyloSpec(
        weights_in=ww_in,
        weights_rec=ww_rec,
        weights_out=w[n_in:, 2 * n_h :],
        weight_shift_in=3,
        weight_shift_rec=3,
        weight_shift_out=3,
    )
    return spec, x, counts[:, :n_in], counts[:, n_in:]


def _deliver_jit(*args):
    from snn_deploy.sim import xylo as xylo_mod

    return jax.jit(xylo_mod._deliver, static_argnums=1)(*args)  # one compilation per (delivery, impl)


@pytest.mark.parametrize("impl", ["scan", "tree"])
def test_delivery_branches_equal_sequential_fold(impl):
    """Every branch of the auto delivery (plain sums, each compacted size, full fold) equals xylosim's order."""
    from snn_deploy.sim import xylo as xylo_mod

    rng = np.random.default_rng(42)
    seen = set()
    sizes = xylo_mod._compact_sizes(44)  # U = 2 * 20 + 4
    cases = [(0, False), (3, False)] + [(k, True) for k in (1, *sizes, sizes[-1] + 3)]
    for n_big, hot in cases * 2:
        spec, x, n_in_c, n_rec_c = _delivery_case(rng, n_big, hot)
        p = xylo_mod._params(spec)
        w_eff = np.asarray(p.w_eff).astype(np.int64)
        counts = np.concatenate([n_in_c, n_rec_c], axis=1)
        want = _sequential_delivery(x, counts, w_eff)
        for delivery in ("auto", "exact"):
            st_ = xylo_mod._Static("v2", spec.n_hidden, False, True, "Spike", delivery, impl)
            args = (jnp.asarray(x, jnp.int32), jnp.asarray(n_in_c, jnp.int8), jnp.asarray(n_rec_c, jnp.int8))
            got = _deliver_jit(p, st_, *args)
            np.testing.assert_array_equal(
                np.asarray(got), want, err_msg=f"{delivery}, {n_big} big, hot {hot}"
            )
        # which branch the auto mode took (mirrors _deliver's bounds, in numpy)
        up = counts @ np.maximum(w_eff, 0).max(axis=1)
        down = counts @ np.minimum(w_eff, 0).min(axis=1)
        if ((x + up[:, None] <= 32767) & (x + down[:, None] >= -32768)).all():
            seen.add("tier1")
            continue
        pos, neg = counts @ np.maximum(w_eff, 0), counts @ np.minimum(w_eff, 0)
        n_risky = int(((x + pos > 32767) | (x + neg < -32768)).any(axis=0).sum())
        seen.add(next((f"compact{k}" for k in sizes if n_risky <= k), "full") if n_risky else "plain")
    expected = {"tier1", "plain", "full"} | {f"compact{k}" for k in sizes}
    assert expected <= seen, f"branches not exercised: {expected - seen}"


_SHARDED_SCRIPT = """
import numpy as np
import jax
from snn_deploy.sim.xylo import XyloSpec, evolve
assert jax.local_device_count() == 2, jax.devices()
rng = np.random.default_rng(0)
spec = XyloSpec(
    weights_in=rng.integers(-128, 128, (4, 12, 2)), weights_rec=rng.integers(-128, 128, (12, 12, 2)),
    weights_out=rng.integers(-128, 128, (12, 3)), dash_syn=np.full(12, 2), dash_syn_2=np.full(12, 3),
    dash_mem=np.full(12, 2), dash_syn_out=np.full(3, 2), dash_mem_out=np.full(3, 2),
    threshold=np.full(12, 3000), threshold_out=np.full(3, 2000), weight_shift_in=4, weight_shift_rec=3,
    aliases=[[i + 1] if i % 3 == 0 else [] for i in range(12)],
)
x = rng.integers(0, 16, (3, 30, 4)) * (rng.random((3, 30, 4)) < 0.4)
out, final, rec = evolve(spec, x)
for i in range(3):
    o, f, r = evolve(spec, x[i])
    np.testing.assert_array_equal(np.asarray(o), np.asarray(out[i]))
    for k in r:
        np.testing.assert_array_equal(np.asarray(r[k]), np.asarray(rec[k][i]))
    np.testing.assert_array_equal(np.asarray(f.vmem), np.asarray(final.vmem[i]))
assert out.shape == (3, 30, 3) and final.isyn.shape == (3, 24)
print("sharded ok")
"""


def test_batch_sharded_over_devices_equals_single_samples(tmp_path):
    """With two XLA CPU devices the batch (3, padded to 4) is split over both; results equal per-sample runs."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    script = tmp_path / "sharded.py"
    script.write_text(_SHARDED_SCRIPT)
    res = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "sharded ok" in res.stdout, res.stderr[-3000:]
