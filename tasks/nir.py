"""``python -m tasks.nir export|fidelity``: NIR graphs of the tasks, and every framework's NIR reader
measured against the float64 reference (``tasks/nir_graph.py``; docs/nir.md).

* ``export --task lif_layer -o lif.nir``: a task NIR can express exactly, from the shared initial
  weights, its time constants in seconds at the stated step ``DT``;
* ``fidelity GRAPH.nir [...] --out results/nir``: one JSON record per graph and framework: the
  reader's status (ok, or unavailable with the exact error), spike mismatches and membrane
  difference against the reference over T steps, and what the importer changes.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import json
import sys
import traceback
from pathlib import Path
from typing import Sequence

import numpy as np

from . import rng
from .errors import SpikebenchError
from .result import check_writable
from .nir_graph import Graph, GraphError, Node, simulate
from .specs import FCPoissonSpec, LIFLayerSpec, get_spec
from .weights import initial_weights

# the reference's one time step, in seconds: snnTorch's reader fixes 1e-4, the others take it
DT = 1e-4
# tasks NIR can express exactly (hard reset to 0, forward Euler at one step), and why the others cannot
EXPORTABLE = ("lif_layer", "fc_mnist_poisson")
NOT_EXPRESSIBLE = {
    "fc_mnist": "its reset subtracts V_th (decided at the previous step, no gradient); NIR's LIF resets to v_reset",
    "synthetic": "its soft reset subtracts V_th S[t-1] after the leak; NIR's CubaLIF resets to v_reset",
    "dsrn_tdbn": "tdBN normalises with the batch's statistics, which no NIR node expresses",
}
# the frameworks with a NIR reader: backends/<name>/nir_reader.py
READERS = ("snntorch", "norse", "sinabs", "spyx", "rockpool", "spikingjelly")
NO_READER = {"brainstate": "brainstate has no NIR reader (nor writer) in its installed version",
             "stbp": "our own code has no NIR reader"}


RECORD = "nir_fidelity"  # the records' marker: the report reads them apart from the result records


class NirFileError(SpikebenchError):
    """A file that is not a NIR graph."""


# ---- nir <-> the reference's neutral form

PARAMS = {
    "Input": (), "Output": (), "Affine": ("weight", "bias"), "Linear": ("weight",), "Scale": ("scale",),
    "Flatten": ("start_dim", "end_dim"), "Conv2d": ("weight", "bias", "stride", "padding", "dilation", "groups"),
    "SumPool2d": ("kernel_size", "stride", "padding"), "AvgPool2d": ("kernel_size", "stride", "padding"),
    "LI": ("tau", "r", "v_leak"), "I": ("r",), "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    "IF": ("r", "v_threshold", "v_reset"), "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
    "Threshold": ("threshold",),
}


def neutral(graph) -> Graph:
    """The reference's form of a ``nir.NIRGraph`` (an unknown node kind is a GraphError naming it)."""
    import nir

    nodes = {}
    for name, node in graph.nodes.items():
        kind = type(node).__name__
        if kind not in PARAMS:
            raise GraphError(f"node {name} is a {kind}, which the reference does not compute")
        params = {k: getattr(node, k) for k in PARAMS[kind] if getattr(node, k, None) is not None}
        if isinstance(node, (nir.Input, nir.Output)):
            t = node.input_type if isinstance(node, nir.Input) else node.output_type
            shape = next(iter(t.values()))
            params["shape"] = None if shape is None else tuple(int(s) for s in np.atleast_1d(shape))
        nodes[name] = Node(kind, params)
    return Graph(nodes, [tuple(e) for e in graph.edges])


def read_graph(path: str | Path):
    """A NIR file as a ``nir.NIRGraph``; anything else a one-line NirFileError."""
    import nir

    path = Path(path)
    if not path.is_file():
        raise NirFileError(f"{path}: no such file")
    try:
        graph = nir.read(str(path))
    except Exception as exc:  # h5py and nir raise many kinds; each is one problem with the file
        raise NirFileError(f"{path} is not a NIR file ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(graph, nir.NIRGraph):
        raise NirFileError(f"{path} holds a single {type(graph).__name__} node, not a NIR graph")
    return graph


def input_shape(graph) -> tuple[int, ...]:
    g = neutral(graph)
    ins = g.inputs()
    if len(ins) != 1 or g.nodes[ins[0]].params.get("shape") is None:
        raise GraphError(f"the graph needs one Input node with a shape; it has {len(ins)}")
    return tuple(g.nodes[ins[0]].params["shape"])


# ---- export

def lif_node_shaped(shape: tuple[int, ...], tau_steps: float, v_th: float):
    """NIR's LIF for ``H = V + (X - V) / tau`` (tau in steps): forward Euler at DT with R = 1, no leak."""
    import nir

    return nir.LIF(tau=np.full(shape, tau_steps * DT), r=np.ones(shape), v_leak=np.zeros(shape),
                   v_threshold=np.full(shape, v_th))


def lif_node(n: int, tau_steps: float, v_th: float):
    return lif_node_shaped((n,), tau_steps, v_th)


def dense(weight: np.ndarray):
    """A layer without bias as NIR's Affine with a zero bias: exact, and what the frameworks' own writers emit
    for a linear layer, so every reader takes it (Sinabs reads no ``nir.Linear``: docs/nir.md)."""
    import nir

    return nir.Affine(weight=weight, bias=np.zeros(weight.shape[0]))


def export_graph(task: str, **overrides):
    """The NIR graph of ``task`` at its initial weights (seed and sizes from the spec)."""
    import nir

    if task not in EXPORTABLE:
        why = NOT_EXPRESSIBLE.get(task, "it is not a task")
        raise SpikebenchError(f"NIR cannot express {task} exactly: {why}; exportable: {', '.join(EXPORTABLE)}")
    spec = get_spec(task, **overrides)
    w = initial_weights(spec)
    if isinstance(spec, LIFLayerSpec):
        n = spec.neurons
        nodes = {"input": nir.Input(input_type={"input": np.array([n])}),
                 "fc": dense(w["fc.weight"]),
                 "lif": lif_node(n, spec.tau, spec.v_th),
                 "output": nir.Output(output_type={"output": np.array([n])})}
        edges = [("input", "fc"), ("fc", "lif"), ("lif", "output")]
    else:
        assert isinstance(spec, FCPoissonSpec)
        nodes = {"input": nir.Input(input_type={"input": np.array([spec.n_in])}),
                 "fc1": dense(w["fc1.weight"]),
                 "lif1": lif_node(spec.n_hidden, spec.tau, spec.v_th),
                 "fc2": dense(w["fc2.weight"]),
                 "lif2": lif_node(spec.n_classes, spec.tau, spec.v_th),
                 "output": nir.Output(output_type={"output": np.array([spec.n_classes])})}
        edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"spikebench_task": task, "dt": DT})


def conv_example(seed: int = 0):
    """A small convolutional graph (not a task): Input [1, 6, 6] -> Conv2d 2x1x3x3 (padding 1, bias) -> LIF ->
    SumPool2d 2x2 -> LIF -> Output [2, 3, 3]; weights drawn from ``seed``, time constants of 2 steps."""
    import nir

    gen = rng.stream(seed, "nir-conv-example")
    w, b = gen.normal(0, 0.8, (2, 1, 3, 3)), gen.normal(0, 0.1, 2)
    nodes = {"input": nir.Input(input_type={"input": np.array([1, 6, 6])}),
             "conv": nir.Conv2d(input_shape=(6, 6), weight=w, stride=1, padding=1, dilation=1, groups=1, bias=b),
             "lif1": lif_node_shaped((2, 6, 6), 2.0, 1.0),
             "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
             "lif2": lif_node_shaped((2, 3, 3), 2.0, 1.0),
             "output": nir.Output(output_type={"output": np.array([2, 3, 3])})}
    edges = [("input", "conv"), ("conv", "lif1"), ("lif1", "pool"), ("pool", "lif2"), ("lif2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"spikebench_example": "conv", "dt": DT})


EXAMPLES = {"conv": conv_example}


# ---- fidelity

def spike_input(shape: tuple[int, ...], T: int, batch: int, seed: int, rate: float = 0.2) -> np.ndarray:
    """Seeded Bernoulli spikes ``[T, B, *shape]`` (float64 0/1)."""
    gen = rng.stream(seed, "nir-input")
    return (gen.random((T, batch) + tuple(shape)) < rate).astype(np.float64)


def load_reader(framework: str):
    """The reader module of ``framework``, or the one-line reason it is unavailable."""
    try:
        return importlib.import_module(f"backends.{framework}.nir_reader"), None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"


def run_reader(reader, graph, x: np.ndarray, dt: float) -> tuple[tuple | None, str | None]:
    """The reader's (output, membranes by node) for ``x`` in float64, or its exact error: import, then run.
    What an importer prints (snnTorch prints every scaled parameter) is dropped."""
    quiet = contextlib.redirect_stdout(io.StringIO())
    try:
        with quiet:
            model = reader.load(graph, dt, x.shape[1], x.shape[0])
    except Exception as exc:
        return None, "import failed: " + one_line(exc)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            y, mem = reader.run(model, x)
    except Exception as exc:
        return None, "run failed: " + one_line(exc)
    return (np.asarray(y, dtype=np.float64), {k: np.asarray(v, dtype=np.float64) for k, v in mem.items()}), None


def one_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" (at {Path(where.filename).parent.name}/{Path(where.filename).name}:{where.lineno})" if where else ""
    return f"{type(exc).__name__}: {msg[0] if msg else ''}{at}"


def compare(ref: np.ndarray, got: np.ndarray, spikes: bool) -> dict:
    """Mismatches (spikes) or the largest absolute difference (membranes); non-finite is a failure."""
    if got.shape != ref.shape:
        if got.size == ref.size:
            got = got.reshape(ref.shape)
        else:
            return {"ok": False, "problem": f"output of shape {list(got.shape)}, the reference's is {list(ref.shape)}"}
    if not np.all(np.isfinite(got)):
        return {"ok": False, "problem": f"{int(np.sum(~np.isfinite(got)))} non-finite values"}
    if spikes:
        bad = got != ref
        steps = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))
        return {"ok": True, "mismatches": int(bad.sum()), "elements": int(ref.size),
                "reference_spikes": int(ref.sum()), "spikes": int(got.sum()),
                "first_mismatch_step": int(steps[0]) if steps.size else None}
    diff = np.abs(got - ref)
    return {"ok": True, "max_abs_diff": float(diff.max()), "max_abs_reference": float(np.abs(ref).max())}


def fidelity(graph, name: str, T: int, batch: int, seed: int, frameworks: Sequence[str]) -> list[dict]:
    """One record per framework for ``graph``: reader status, spikes and membranes against the reference."""
    g = neutral(graph)
    x = spike_input(input_shape(graph), T, batch, seed)
    ref = simulate(g, x, DT)
    out_name = g.outputs()[0]
    records = []
    for fw in frameworks:
        rec = {"record": RECORD, "graph": name, "framework": fw, "T": T, "batch": batch, "seed": seed, "dt": DT,
               "nodes": sorted({type(n).__name__ for n in graph.nodes.values()})}
        if fw in NO_READER:
            records.append(rec | {"status": "unavailable", "reason": NO_READER[fw]})
            continue
        reader, why = load_reader(fw)
        if reader is None:
            records.append(rec | {"status": "unavailable", "reason": why})
            continue
        rec["version"] = reader.version()
        rec["differences"] = reader.DIFFERENCES
        got, why = run_reader(reader, copy.deepcopy(graph), x, DT)  # a reader never sees another's changes
        if got is None:
            records.append(rec | {"status": "unavailable", "reason": why})
            continue
        out, mem = got
        rec["spikes"] = compare(ref.outputs[out_name], out, spikes=True)
        # each neuron node's membrane after the step (reset included): what the frameworks keep as state
        rec["membranes"] = {n: compare(ref.states[n], mem[n], spikes=False) if n in mem
                            else {"ok": False, "problem": "not exposed by the imported module"} for n in ref.states}
        ok = [v for v in rec["membranes"].values() if v["ok"]]
        rec["membrane"] = ({"ok": True, "max_abs_diff": max(v["max_abs_diff"] for v in ok),
                            "max_abs_reference": max(v["max_abs_reference"] for v in ok), "nodes": len(ok)} if ok
                           else {"ok": False, "problem": "no neuron's membrane is exposed by the imported module"})
        failed = [f"{n}: {v['problem']}" for n, v in rec["membranes"].items() if not v["ok"] and n in mem]
        rec["status"] = "ok" if rec["spikes"]["ok"] and not failed else "failed"
        if failed or not rec["spikes"]["ok"]:
            rec["problem"] = "; ".join(([rec["spikes"]["problem"]] if not rec["spikes"]["ok"] else []) + failed)
        records.append(rec)
    return records


def save_records(records: list[dict], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for r in records:
        p = out / f"{r['graph']}__{r['framework']}.json"
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(r, indent=1, sort_keys=True) + "\n")
        tmp.replace(p)
        paths.append(p)
    return paths


# ---- a user's graph, timed (python -m tasks.measure --nir model.nir; the sweep's and the suite's points)

NIR_MEASURES = ("throughput",)  # what a record of a graph measures: inference and forward + backward times
NIR_RUN = {"device": "cpu", "precision": "fp32"}  # readers build on the CPU, in float32


def graph_name(path: str | Path) -> str:
    return Path(path).stem


def readers_of(text: str) -> tuple[str, ...]:
    """The frameworks a ``--backend`` value names ("all": every reader); one without a reader is refused."""
    frameworks = READERS if text == "all" else tuple(dict.fromkeys(f.strip() for f in text.split(",") if f.strip()))
    unknown = [fw for fw in frameworks if fw not in READERS]
    if unknown or not frameworks:
        raise SpikebenchError(f"no NIR reader for {', '.join(unknown) or '(none)'}; readers: {', '.join(READERS)}"
                              + "".join(f"; {k}: {v}" for k, v in NO_READER.items() if k in unknown))
    return frameworks


def checked_graph(path: str | Path):
    """The graph of ``path`` once the reference has taken it (a one-line error otherwise)."""
    graph = read_graph(path)
    simulate(neutral(graph), spike_input(input_shape(graph), 1, 1, 0), DT)
    return graph


def nir_task(path: str | Path, T: int, batch: int, seed: int) -> dict:
    """What a graph's measurement record says it measured (its ``config["task"]``): the graph by its
    contents, so an edited file is measured again, and the settings of the point."""
    import hashlib

    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return {"name": f"nir:{graph_name(path)}", "nir_sha256": digest, "T": T, "batch_size": batch, "seed": seed, "dt": DT}


def nir_points(row, frameworks: Sequence[str], warmup: int, folder: str = "") -> list:
    """The measurement points of a graph's row (a :class:`tasks.profiles.NirRow`: ``tasks.measure --nir`` on
    one framework, one record each), for the sweep and the suite: their orchestrator runs them and finds
    them done by the one rule."""
    from .profiles import Point, measure_key

    path = Path(row.graph).resolve()
    checked_graph(path)  # a bad graph is refused here, once, before any point runs
    name = graph_name(path)
    batch, seed, estimate_s = row.batch_size, row.seed, row.seconds
    points = []
    for T in row.Ts:
        task = nir_task(path, T, batch, seed)  # the graph's digest, read once a T
        for fw in frameworks:
            args = ("--nir", str(path), "--backend", fw, "--T", str(T), "--batch-size", str(batch), "--seed", str(seed),
                    "--repeats", str(row.repeats), "--warmup", str(warmup))
            points.append(Point(part="timing", key=folder + measure_key(f"nir-{name}", fw, T), backend=fw,
                                label=f"measure nir:{name} {fw} T={T}", module="tasks.measure", args=args,
                                estimate_s=estimate_s, task=task["name"], expected_task=task,
                                precision=NIR_RUN["precision"], device=NIR_RUN["device"], measures=NIR_MEASURES))
    return points


def measure_graph(graph, source: str, framework: str, T: int, batch: int, seed: int, repeats: int, warmup: int):
    """One measurement record (tasks.result.Result) of ``graph`` through ``framework``'s reader: the
    fidelity row, then inference and forward + backward timed on the same seeded spikes."""
    import platform

    from .cpu import model_name
    from .measure import time_calls
    from .result import Result
    from .runner import host_info, host_peak_rss_bytes, now

    task = nir_task(source, T, batch, seed)
    name = graph_name(source)
    result = Result(task=task["name"], backend=framework, kind="measurement", framework=framework,
                    versions={"python": platform.python_version(), "numpy": np.__version__},
                    device={"type": NIR_RUN["device"], "name": model_name()}, seed=seed,
                    config={"nir": source, "T": T, "batch_size": batch, "dt": DT, "task": task, "run": dict(NIR_RUN)},
                    host=host_info(), started_at=now())
    row = fidelity(graph, name, T, batch, seed, (framework,))[0]
    result.extra["fidelity"] = row
    if row["status"] == "unavailable":
        result.status, result.message = "unavailable", row["reason"]
        result.finished_at = now()
        return result
    reader, _ = load_reader(framework)
    result.versions[framework] = row["version"]
    x = spike_input(input_shape(graph), T, batch, seed)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            calls = reader.calls(reader.load(copy.deepcopy(graph), DT, batch, T), x)
        for key, call, what in zip(("inference", "forward_backward"), calls, (
                "one forward pass without gradients, input staged once",
                "forward and backward pass of the mean output (the reader's surrogate gradients), no optimiser step")):
            t = time_calls(call, lambda: None, repeats, warmup)  # each call returns once its work is done
            t.what = what
            result.timings[key] = t
            result.set_metric(f"{key}_time", t.median)
            result.set_metric(f"{key}_throughput", batch / t.median)
            result.set_metric(f"{key}_spread", t.spread)
    except Exception as exc:  # a reader that imports but cannot time: its record says why
        result.status, result.message = "error", one_line(exc)
    result.set_metric("host_peak_rss", host_peak_rss_bytes())
    result.extra.update(repeats=repeats, warmup=warmup, measures=list(NIR_MEASURES))
    result.finished_at = now()
    return result


def measure_main(path: str, backends: str, T: int, batch: int, seed: int, repeats: int, warmup: int, out: str) -> int:
    """``tasks.measure --nir``: every framework that reads the graph, one record each under ``out``."""
    if T <= 0 or batch <= 0:
        raise SpikebenchError("--T and --batch-size must be > 0")
    frameworks = readers_of(backends)
    target = Path(out)
    one_file = target.suffix == ".json"  # one framework's record (a sweep's or suite's point)
    if one_file and len(frameworks) != 1:
        raise SpikebenchError(f"--out {out}: a .json file holds one framework's record; give a folder for several")
    if not one_file and target.is_file():
        raise SpikebenchError(f"--out {out}: with --nir, a folder for one record per framework (or a .json file for one)")
    graph = checked_graph(path)
    name = graph_name(path)
    (target.parent if one_file else target).mkdir(parents=True, exist_ok=True)
    for fw in frameworks:
        result = measure_graph(graph, str(path), fw, T, batch, seed, repeats, warmup)
        result.save(str(target if one_file else target / f"{name}-{fw}.json"))
        times = ", ".join(f"{k} {result.metric(k + '_time') * 1e3:.2f} ms" for k in ("inference", "forward_backward")
                          if result.metric(k + "_time") is not None)
        fid = result.extra["fidelity"]
        print(f"{fw:<13} {result.status}: {result.message}" if fid["status"] == "unavailable" else
              f"{fw:<13} {result.status}: {times or result.message}; fidelity: {summary_line(fid).split(fw, 1)[1].strip()}")
    if one_file:  # a point's process says how its point ended, as tasks.measure --task does
        from .cli import EXIT_CODES

        return EXIT_CODES[result.status]
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    import nir

    from .cli import OneLineParser

    p = OneLineParser(prog="python -m tasks.nir", description="NIR graphs: export a task; measure readers' fidelity.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    e = sub.add_parser("export", help="write a task's NIR graph at its initial weights")
    what = e.add_mutually_exclusive_group(required=True)
    what.add_argument("--task", help="a task: " + ", ".join(EXPORTABLE))
    what.add_argument("--example", choices=sorted(EXAMPLES), help="a small graph that is not a task")
    e.add_argument("--neurons", type=int, help="lif_layer's width N")
    e.add_argument("--seed", type=int)
    e.add_argument("-o", "--output", required=True)
    f = sub.add_parser("fidelity", help="every NIR reader against the float64 reference")
    f.add_argument("graphs", nargs="+", help=".nir files")
    f.add_argument("--T", type=int, default=100)
    f.add_argument("--batch-size", type=int, default=4)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--framework", default="all", help="comma list of " + ", ".join(READERS + tuple(NO_READER)))
    f.add_argument("--out", default="results/nir", help="folder of the JSON records")
    args = p.parse_args(argv)
    try:
        if args.command == "export":
            overrides = {k: v for k, v in (("neurons", args.neurons), ("seed", args.seed)) if v is not None}
            if args.example:
                graph = EXAMPLES[args.example](args.seed or 0)
            else:
                graph = export_graph(args.task, **overrides)
            check_writable(args.output)
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            nir.write(args.output, graph)
            print(f"wrote {args.output}: {len(graph.nodes)} nodes, dt {DT} s")
            return 0
        frameworks = READERS + tuple(NO_READER) if args.framework == "all" else tuple(args.framework.split(","))
        unknown = [fw for fw in frameworks if fw not in READERS and fw not in NO_READER]
        if unknown or args.T <= 0 or args.batch_size <= 0:
            raise SpikebenchError(f"unknown framework {', '.join(unknown)}" if unknown else "--T and --batch-size must be > 0")
        graphs = [(Path(g).stem, read_graph(g)) for g in args.graphs]
        for name, graph in graphs:  # every graph checked by the reference before any reader runs
            simulate(neutral(graph), spike_input(input_shape(graph), 1, 1, args.seed), DT)
        for name, graph in graphs:
            records = fidelity(graph, name, args.T, args.batch_size, args.seed, frameworks)
            save_records(records, Path(args.out))
            for r in records:
                print(summary_line(r))
    except SpikebenchError as exc:
        sys.stderr.write(f"spikebench: error: {exc}\n")
        return exc.exit_code
    return 0


def summary_line(r: dict) -> str:
    if r["status"] == "unavailable":
        return f"{r['graph']:<20} {r['framework']:<13} unavailable: {r['reason']}"
    if r["status"] == "failed":
        return f"{r['graph']:<20} {r['framework']:<13} failed: {r['problem']}"
    s, v = r["spikes"], r.get("membrane", {})
    spikes = f"{s['mismatches']}/{s['elements']} spikes differ"
    mem = f"membrane max |diff| {v['max_abs_diff']:.3g}" if v.get("ok") else f"membrane: {v.get('problem')}"
    return f"{r['graph']:<20} {r['framework']:<13} {spikes}; {mem}"


if __name__ == "__main__":
    raise SystemExit(main())
