"""Run networks in Lava 0.10's bit-accurate CPU simulation and save u, v, s per layer per step.

This file runs INSIDE the Python 3.10 Lava environment (``.lava-venv``, built by ``tests/lava_env.py``);
it must import nothing from snn_deploy and must stay Python 3.10 / numpy 1.x compatible.
The project drives it through ``snn_deploy.hil`` (the Lava CPU stand-in device) and ``tests/lava_ref.py``
(subprocess, arrays exchanged as .npz files). It ships in the package (``snn_deploy/lava_driver.py``) but is
never imported by it: it is run by path with the Lava interpreter.

Usage::

    python deploy/lava_driver.py JOBS.npz RESULTS.npz    # run every job in JOBS.npz
    python deploy/lava_driver.py --self-test             # import check used by tests/lava_env.py

Job file layout (flat .npz keys, job index ``i``):

* ``n_jobs``: number of jobs.
* ``j{i}/kind``: ``"net"`` (explicit processes) or ``"netx"`` (a netx HDF5 file).
* ``j{i}/input``: ``(T, n_in)`` int32; column ``t`` of Lava's source RingBuffer, emitted at step t+1.
* ``"net"`` jobs: ``j{i}/n_layers``, ``j{i}/n_proj`` and, per LIF layer k, ``L{k}/{size,du,dv,vth,
  bias_mant,bias_exp,reset_interval,reset_offset}`` (reset_interval 0: plain ``LIF``, else ``LIFReset``);
  per projection p, ``P{p}/{src,dst,direct,weight,weight_exp,num_weight_bits,sign_mode,
  num_message_bits}`` and optionally ``P{p}/delays`` (``DelayDense``). ``src = -1`` is the source;
  ``direct = 1`` wires the source straight into the LIF's ``a_in`` (no synapse). ``sign_mode`` 0 lets
  Lava determine it, else the ``SignMode`` value (1 MIXED, 2 EXCITATORY, 3 INHIBITORY).
* ``"netx"`` jobs: ``j{i}/path``, ``j{i}/input_message_bits``, ``j{i}/reset_interval`` (0: none),
  ``j{i}/reset_offset`` and optionally ``j{i}/input_bias`` (bias_mant of an ``input`` layer's neuron,
  torch order; such a network gets no source, since netx leaves the Input block's port unconnected).

Results: ``j{i}/n_layers`` and ``j{i}/L{k}/{u,v,s}`` with shape ``(T, N)`` int32, row t = state at the end of
step t+1 (after the spike reset), exactly as Lava's ``Monitor`` reports it. Conv layers (netx) are
reported in torch ``(C, H, W)`` C-order flattening (Lava stores them as ``(W, H, C)``).
Also ``j{i}/seconds``: wall time of the Lava run (build + compile + run + read-out).
``"net"`` jobs with ``j{i}/monitors = 0`` run without Monitors (speed mode): only the last layer's
spikes are returned, as ``L0/s`` from a sink RingBuffer, plus ``j{i}/run_seconds`` (compile + run).
"""

from __future__ import annotations

import os
import sys
import time
import types

# Run by path, Python puts this file's folder (the snn_deploy package, with modules such as io.py and errors.py)
# first on sys.path; drop it so that nothing in the Lava interpreter can import those by accident.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import numpy as np  # noqa: E402


def install_stand_ins() -> None:
    """Register stand-in modules so that ``lava.lib.dl.netx`` imports without torch or slayer.

    netx uses torch only for type hints and ``torch.is_tensor``, and imports slayer's RF neuron only
    for resonate-and-fire layers; CUBA networks never reach those code paths.
    """
    if "torch" not in sys.modules:
        torch = types.ModuleType("torch")
        torch.tensor = type("tensor", (), {})
        torch.Tensor = torch.tensor
        torch.is_tensor = lambda obj: False
        sys.modules["torch"] = torch
    for name in ("lava.lib.dl.slayer", "lava.lib.dl.slayer.neuron", "lava.lib.dl.slayer.neuron.rf"):
        if name not in sys.modules:
            sys.modules[name] = types.ModuleType(name)

    def neuron_params(*args, **kwargs):
        raise RuntimeError("RF neurons need the real lava.lib.dl.slayer (torch); not supported here")

    sys.modules["lava.lib.dl.slayer.neuron.rf"].neuron_params = neuron_params


def _scalar(z, key):
    return z[key][()].item()


def _lava() -> types.SimpleNamespace:
    """The Lava classes the driver uses, imported lazily (only inside the Lava env)."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF, LIFReset
    from lava.proc.monitor.process import Monitor
    from lava.utils.weightutils import SignMode

    return types.SimpleNamespace(
        RunSteps=RunSteps,
        Loihi2SimCfg=Loihi2SimCfg,
        DelayDense=DelayDense,
        Dense=Dense,
        RingBuffer=RingBuffer,
        LIF=LIF,
        LIFReset=LIFReset,
        Monitor=Monitor,
        SignMode=SignMode,
    )


def run_net_job(z, prefix: str) -> dict:
    """Build RingBuffer -> (Dense|DelayDense|direct) -> LIF ... from the job arrays and run it."""
    lv = _lava()
    inp = np.asarray(z[prefix + "input"], dtype=np.int32)
    steps = inp.shape[0]
    src = lv.RingBuffer(data=inp.T.copy())
    lifs = []
    for k in range(_scalar(z, prefix + "n_layers")):
        p = f"{prefix}L{k}/"
        kw = dict(
            shape=(_scalar(z, p + "size"),),
            du=_scalar(z, p + "du"),
            dv=_scalar(z, p + "dv"),
            vth=_scalar(z, p + "vth"),
            bias_mant=np.asarray(z[p + "bias_mant"]),
            bias_exp=np.asarray(z[p + "bias_exp"]),
        )
        interval = _scalar(z, p + "reset_interval")
        if interval > 0:
            lifs.append(
                lv.LIFReset(reset_interval=interval, reset_offset=_scalar(z, p + "reset_offset"), **kw)
            )
        else:
            lifs.append(lv.LIF(**kw))
    for j in range(_scalar(z, prefix + "n_proj")):
        p = f"{prefix}P{j}/"
        src_idx, dst = _scalar(z, p + "src"), _scalar(z, p + "dst")
        out_port = src.s_out if src_idx < 0 else lifs[src_idx].s_out
        if _scalar(z, p + "direct"):
            out_port.connect(lifs[dst].a_in)
            continue
        kw = dict(
            weights=np.asarray(z[p + "weight"]),
            weight_exp=_scalar(z, p + "weight_exp"),
            num_weight_bits=_scalar(z, p + "num_weight_bits"),
            num_message_bits=_scalar(z, p + "num_message_bits"),
        )
        mode = _scalar(z, p + "sign_mode")
        if mode:
            kw["sign_mode"] = lv.SignMode(mode)
        if p + "delays" in z.files:
            delays = np.asarray(z[p + "delays"]).astype(int)
            syn = lv.DelayDense(delays=delays, max_delay=int(delays.max()), **kw)
        else:
            syn = lv.Dense(**kw)
        out_port.connect(syn.s_in)
        syn.a_out.connect(lifs[dst].a_in)
    if prefix + "monitors" in z.files and not _scalar(z, prefix + "monitors"):
        return _run_sink_only(lv, lifs, steps)
    probes = [(lif.u, lif.v, lif.s_out) for lif in lifs]
    return _run_and_read(lv, lifs[0], probes, steps, shapes=[None] * len(lifs))


def _run_sink_only(lv, lifs, steps: int) -> dict:
    """Speed mode: no Monitors, only a sink RingBuffer on the last layer's spikes (``L{last}/s``)."""
    from lava.proc.io.sink import RingBuffer as Sink

    sink = Sink(shape=lifs[-1].s_out.shape, buffer=steps)
    lifs[-1].s_out.connect(sink.a_in)
    t0 = time.perf_counter()
    sink.run(condition=lv.RunSteps(num_steps=steps), run_cfg=lv.Loihi2SimCfg(select_tag="fixed_pt"))
    t_run = time.perf_counter() - t0
    try:
        data = np.asarray(sink.data.get()).T.astype(np.int32)
    finally:
        sink.stop()
    return {"n_layers": np.int64(1), "L0/s": data, "run_seconds": np.float64(t_run)}


def run_netx_job(z, prefix: str) -> dict:
    """Load a netx HDF5 file with ``netx.hdf5.Network``, feed it from a RingBuffer and run it."""
    install_stand_ins()
    from lava.lib.dl import netx

    lv = _lava()
    inp = np.asarray(z[prefix + "input"], dtype=np.int32)
    steps = inp.shape[0]
    interval = _scalar(z, prefix + "reset_interval")
    net = netx.hdf5.Network(
        net_config=str(z[prefix + "path"][()]),
        input_message_bits=_scalar(z, prefix + "input_message_bits"),
        reset_interval=interval if interval > 0 else None,
        reset_offset=_scalar(z, prefix + "reset_offset"),
    )
    if type(net.layers[0]).__name__ == "Input":
        # lava-dl 0.6.0's Input block leaves its InPort unconnected: drive the neuron by its bias
        # (as lava-dl's tests do); a source connected to net.inp would make the compiler fail.
        if prefix + "input_bias" in z.files:
            bias = np.asarray(z[prefix + "input_bias"])
            if bias.ndim == 3:  # torch (C, H, W) -> Lava (W, H, C)
                bias = bias.transpose(2, 1, 0)
            net.in_layer.neuron.bias_mant.init = bias.reshape(net.in_layer.neuron.v.shape).astype(int)
    else:
        shape = tuple(net.inp.shape)  # Lava (W, H, C) or (N,); our input is torch (C, H, W) flattened
        data = inp.reshape((steps,) + shape[::-1]).transpose(tuple(range(len(shape), 0, -1)) + (0,))
        src = lv.RingBuffer(data=np.ascontiguousarray(data))
        src.s_out.connect(net.inp)
    probes, shapes = [], []
    for layer in net.layers:
        probes.append((layer.neuron.u, layer.neuron.v, layer.neuron.s_out))
        shapes.append(tuple(layer.neuron.v.shape))
    return _run_and_read(lv, net, probes, steps, shapes)


def _run_and_read(lv, root, probes, steps: int, shapes) -> dict:
    monitors = []
    for triple in probes:
        row = []
        for var in triple:
            mon = lv.Monitor()
            mon.probe(var, steps)
            row.append(mon)
        monitors.append(row)
    root.run(condition=lv.RunSteps(num_steps=steps), run_cfg=lv.Loihi2SimCfg(select_tag="fixed_pt"))
    out = {}
    try:
        for k, (row, triple, shape) in enumerate(zip(monitors, probes, shapes, strict=True)):
            for name, mon, var in zip(("u", "v", "s"), row, triple, strict=True):
                data = mon.get_data()[var.process.name][var.name]
                data = np.asarray(data).reshape(steps, -1)
                if shape is not None and len(shape) == 3:
                    # Lava (W, H, C) C-order -> torch (C, H, W) C-order.
                    data = data.reshape((steps,) + shape).transpose(0, 3, 2, 1).reshape(steps, -1)
                out[f"L{k}/{name}"] = data.astype(np.int64).astype(np.int32)
    finally:
        root.stop()
    out["n_layers"] = np.int64(len(probes))
    return out


def self_test() -> int:
    """Import everything the driver needs and run a one-neuron network for 3 steps."""
    import h5py  # noqa: F401

    install_stand_ins()
    from lava.lib.dl import netx  # noqa: F401

    lv = _lava()
    src = lv.RingBuffer(data=np.array([[1, 0, 0]], dtype=np.int32))
    dense = lv.Dense(weights=np.array([[10]]))
    lif = lv.LIF(shape=(1,), du=4095, dv=0, vth=100)
    src.s_out.connect(dense.s_in)
    dense.a_out.connect(lif.a_in)
    out = _run_and_read(lv, lif, [(lif.u, lif.v, lif.s_out)], 3, [None])
    expected = np.array([[0], [640], [640]])
    if not np.array_equal(out["L0/v"], expected):
        print(f"self-test failed: v = {out['L0/v'].ravel()}, expected {expected.ravel()}")
        return 1
    print("lava driver self-test ok")
    return 0


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--self-test":
        return self_test()
    if len(argv) != 2:
        print(__doc__)
        return 2
    z = np.load(argv[0], allow_pickle=False)
    results = {}
    for i in range(_scalar(z, "n_jobs")):
        prefix = f"j{i}/"
        kind = str(z[prefix + "kind"][()])
        t0 = time.perf_counter()
        if kind == "net":
            res = run_net_job(z, prefix)
        elif kind == "netx":
            res = run_netx_job(z, prefix)
        else:
            raise ValueError(f"job {i}: unknown kind {kind!r}")
        res["seconds"] = np.float64(time.perf_counter() - t0)
        results.update({prefix + k: v for k, v in res.items()})
    np.savez(argv[1], **results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
