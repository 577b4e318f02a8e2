"""CPU engines for the default model, measured in one run on this machine: which one should run it.

    python bench/engines.py [--engines torch-fp32,torch-bf16,llama.cpp,ctranslate2,onnxruntime-genai]
                            [--tokens 64] [--busy] [--work DIR]

The prompt is unitune's own prompt for `textwrap.dedent` (about 600 tokens), greedy. Each engine runs in a
child process of its own, one after the other (never two at once), and reports:
- load: seconds from nothing to ready (the model files already converted for it, which is timed apart:
  "prepare", once per machine);
- time to first token: the 600-token prompt read and one token written;
- decode tokens/s with one sequence, and with 4 sequences in one batch (all 4 counted), each from the
  difference between writing `--tokens` tokens and writing one, so the prompt's reading is left out;
- peak memory (the process's, or the server's for llama.cpp);
- LoRA: what serving a PEFT LoRA adapter takes (once per adapter) and what switching between two costs
  per request (two random LoRA adapters, r=16 on q/v, as `unitune train` makes them: speed and
  conversion, not what they learned);
- greedy output against torch fp32: how many of the tokens are the same before the first difference.

`--busy` keeps one core busy (a spinning process) for the whole run: an editor's machine is never idle.
An engine whose package is missing is reported as such; ctranslate2 and onnxruntime-genai install from
the package index (`pip install ctranslate2 onnxruntime-genai`), llama.cpp's server is built once
(`unitune engine install`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("torch-fp32", "torch-bf16", "llama.cpp", "llama.cpp-poll0", "llama.cpp-1t", "ctranslate2", "onnxruntime-genai")
THREADS = 2
BATCH = 4


# -- what every engine is given ---------------------------------------------------------------

def prepare_inputs(work: Path) -> dict:
    """The prompt (unitune's, for `textwrap.dedent`), the model's folder and GGUF file, and two LoRA
    adapters in PEFT form and as llama.cpp GGUF files, written once into `work`."""
    inputs_file = work / "inputs.json"
    if inputs_file.is_file():
        return json.loads(inputs_file.read_text())
    import shutil
    import textwrap

    from unitune.runtime.llama_cpp import base_gguf, lora_to_gguf
    from unitune.runtime.loading import resolve_model_folder
    from unitune.adapters.registry import AdapterRegistry
    from unitune.request import GenerationRequest, fit_prompt, prepare
    from unitune.runtime.served_models import load_tokenizer
    from unitune.prompt import model_input
    from unitune.settings import Settings
    from unitune.source import SourceFile

    sys.path.insert(0, str(ROOT / "bench"))
    from remote import make_adapters

    settings = Settings(validate="syntax")
    project = work / "project"
    project.mkdir(parents=True, exist_ok=True)
    module = project / "textwrap_copy.py"
    shutil.copy(textwrap.__file__, module)
    source = SourceFile.from_path(module)
    offset = source.text.index("def dedent(")
    tokenizer = load_tokenizer(settings.model)
    prepared = prepare(GenerationRequest(module, offset, settings, project_root=project))
    prompt, _ = fit_prompt(prepared, tokenizer, 1800, settings.context)
    text = model_input(tokenizer, prompt.text, prompt.language, max_tokens=1800, format_version=prompt.format_version)
    names = ["project-a", "project-b"]
    make_adapters(project, names)
    registry = AdapterRegistry(project)
    inputs = {
        "prompt": text,
        "prompt_tokens": len(tokenizer(text, add_special_tokens=False)["input_ids"]),
        "folder": str(resolve_model_folder(settings.model)[0]),
        "gguf": str(base_gguf(settings.model)),
        "adapters": [str(registry.find_verified(name).path) for name in names],
        "gguf_adapters": [str(lora_to_gguf(registry.find_verified(name), work / f"{name}.gguf")) for name in names],
    }
    inputs_file.write_text(json.dumps(inputs, indent=1))
    return inputs


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def decode_rates(run, tokens: int) -> tuple[float, float, float, list[int]]:
    """(time to first token, decode tokens/s for one sequence, for `BATCH` in a batch, the greedy ids)
    from `run(batch, new_tokens) -> (seconds, ids of the first sequence)`."""
    run(1, 1)  # warm-up: first calls allocate
    first, _ = min((run(1, 1) for _ in range(2)), key=lambda timed: timed[0])
    whole, ids = run(1, tokens)
    batch_first, _ = run(BATCH, 1)
    batch_whole, _ = run(BATCH, tokens)
    return first, (tokens - 1) / max(1e-9, whole - first), BATCH * (tokens - 1) / max(1e-9, batch_whole - batch_first), ids


# -- the engines (each in its own child process) ---------------------------------------------

def measure_torch(inputs: dict, tokens: int, dtype_name: str) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(THREADS)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(inputs["folder"])
    model = AutoModelForCausalLM.from_pretrained(inputs["folder"], dtype=dtype).eval()
    load = time.perf_counter() - started
    ids = tokenizer(inputs["prompt"], add_special_tokens=False, return_tensors="pt")["input_ids"]

    def run(batch: int, new: int):
        with torch.inference_mode():
            began = time.perf_counter()
            out = model.generate(ids.repeat(batch, 1), attention_mask=torch.ones_like(ids).repeat(batch, 1),
                                 max_new_tokens=new, min_new_tokens=new, do_sample=False,
                                 pad_token_id=tokenizer.eos_token_id)
            return time.perf_counter() - began, out[0, ids.shape[1]:].tolist()

    ttft, single, batched, greedy = decode_rates(run, tokens)
    started = time.perf_counter()
    peft = PeftModel.from_pretrained(model, inputs["adapters"][0], adapter_name="a")
    peft.load_adapter(inputs["adapters"][1], adapter_name="b")
    lora_prepare = time.perf_counter() - started
    switches = []
    for name in ("a", "b") * 5:
        began = time.perf_counter()
        peft.set_adapter(name)
        switches.append(time.perf_counter() - began)
    return {"load_s": load, "ttft_s": ttft, "decode_tps": single, "batch_tps": batched, "rss_mb": peak_rss_mb(),
            "lora": f"PEFT, every type; loading two: {lora_prepare:.1f} s; switch {statistics.median(switches) * 1000:.1f} ms",
            "greedy": tokenizer.decode(greedy), "greedy_ids": greedy}


def measure_llama_cpp(inputs: dict, tokens: int, threads: int = THREADS, poll: int | None = None) -> dict:
    import urllib.request

    from unitune.runtime.llama_cpp import server_command
    from unitune.runtime.llama_server import LlamaServerProcess, find_server_binary

    binary = find_server_binary()
    if binary is None:
        return {"missing": "llama-server is not built (`unitune engine install`)"}
    command = server_command(str(binary), Path(inputs["gguf"]), [Path(p) for p in inputs["gguf_adapters"]], 0,
                             parallel=BATCH, threads=threads, context=BATCH * 1024)
    if poll is not None:
        command += ["--poll", str(poll)]
    started = time.perf_counter()
    with LlamaServerProcess(command, Path(tempfile.mkdtemp()) / "server.log") as server:
        load = time.perf_counter() - started

        def complete(new: int, lora: list[dict] | None = None) -> dict:
            body = {"prompt": inputs["prompt"], "n_predict": new, "temperature": 0.0, "cache_prompt": False,
                    "ignore_eos": True, "return_tokens": True, "lora": lora or [{"id": 0, "scale": 0.0}]}
            request = urllib.request.Request(f"{server.url}/completion", json.dumps(body).encode(),
                                             {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=600) as answer:
                return json.loads(answer.read())

        def run(batch: int, new: int):
            from concurrent.futures import ThreadPoolExecutor

            began = time.perf_counter()
            with ThreadPoolExecutor(batch) as pool:
                answers = list(pool.map(lambda _: complete(new), range(batch)))
            return time.perf_counter() - began, answers[0].get("tokens") or answers[0]["content"]

        ttft, single, batched, greedy = decode_rates(run, tokens)

        def short(adapter: int) -> float:
            """Milliseconds of a request of a few tokens with `adapter` at scale 1 (the other at 0)."""
            body = {"prompt": "def add(a, b):\n    return a + b\n\ndef test_add():\n", "n_predict": 4,
                    "temperature": 0.0, "cache_prompt": False,
                    "lora": [{"id": adapter, "scale": 1.0}, {"id": 1 - adapter, "scale": 0.0}]}
            request = urllib.request.Request(f"{server.url}/completion", json.dumps(body).encode(),
                                             {"Content-Type": "application/json"})
            began = time.perf_counter()
            with urllib.request.urlopen(request, timeout=600) as answer:
                answer.read()
            return (time.perf_counter() - began) * 1000

        short(0)
        same_ms = statistics.median(short(0) for _ in range(7))  # the same adapter each time
        switch_ms = statistics.median(short(index % 2) for index in range(1, 8))  # another adapter each time
        rss = _process_peak_mb(server.process.pid)
    return {"load_s": load, "ttft_s": ttft, "decode_tps": single, "batch_tps": batched, "rss_mb": rss,
            "lora": (f"GGUF per adapter, once (unitune converts); a short request {switch_ms:.0f} ms with another "
                     f"adapter each time, {same_ms:.0f} ms with the same"),
            "greedy_ids": greedy if isinstance(greedy, list) else None, "greedy": greedy if isinstance(greedy, str) else None}


def _process_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_ctranslate2(inputs: dict, tokens: int, work: Path) -> dict:
    try:
        import ctranslate2
    except ImportError:
        return {"missing": "pip install ctranslate2"}
    from transformers import AutoTokenizer

    converted = work / "ct2-int8"
    prepare = None
    if not converted.is_dir():
        began = time.perf_counter()
        ctranslate2.converters.TransformersConverter(inputs["folder"]).convert(str(converted), quantization="int8")
        prepare = time.perf_counter() - began
    started = time.perf_counter()
    generator = ctranslate2.Generator(str(converted), device="cpu", compute_type="int8", intra_threads=THREADS)
    load = time.perf_counter() - started
    tokenizer = AutoTokenizer.from_pretrained(inputs["folder"])
    prompt = tokenizer.convert_ids_to_tokens(tokenizer(inputs["prompt"], add_special_tokens=False)["input_ids"])

    def run(batch: int, new: int):
        began = time.perf_counter()
        results = generator.generate_batch([prompt] * batch, max_length=new, min_length=new, sampling_topk=1,
                                           include_prompt_in_result=False)
        return time.perf_counter() - began, results[0].sequences_ids[0]

    ttft, single, batched, greedy = decode_rates(run, tokens)
    rss = peak_rss_mb()  # before the merge below, which holds the torch model
    lora = _ctranslate2_lora(inputs, work)
    return {"load_s": load, "prepare_s": prepare, "ttft_s": ttft, "decode_tps": single, "batch_tps": batched,
            "rss_mb": rss, "lora": lora, "greedy": tokenizer.decode(greedy), "greedy_ids": greedy}


def _ctranslate2_lora(inputs: dict, work: Path) -> str:
    """ctranslate2 has no LoRA of its own: an adapter is merged into a copy of the model, converted."""
    import ctranslate2
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    began = time.perf_counter()
    merged_folder, out = work / "merged-a", work / "ct2-int8-a"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(inputs["folder"], dtype=torch.float32),
                                      inputs["adapters"][0]).merge_and_unload()
    model.save_pretrained(merged_folder)
    AutoTokenizer.from_pretrained(inputs["folder"]).save_pretrained(merged_folder)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    ctranslate2.converters.TransformersConverter(str(merged_folder)).convert(str(out), quantization="int8")
    once = time.perf_counter() - began
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
    began = time.perf_counter()
    ctranslate2.Generator(str(out), device="cpu", compute_type="int8", intra_threads=THREADS)
    switch = time.perf_counter() - began
    return (f"merged copy per adapter, once: {once:.0f} s, {size:.0f} MB; per request: another model "
            f"({switch:.1f} s to load, or kept resident)")


def measure_onnxruntime_genai(inputs: dict, tokens: int, work: Path) -> dict:
    try:
        import onnxruntime_genai as og
    except ImportError:
        return {"missing": "pip install onnxruntime-genai"}
    import numpy

    built = work / "ort-int4"
    prepare = None
    if not (built / "genai_config.json").is_file():
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", inputs["folder"], "-o", str(built),
                        "-p", "int4", "-e", "cpu", "-c", str(work / "ort-cache")], check=True, capture_output=True)
        prepare = time.perf_counter() - began
    started = time.perf_counter()
    config = og.Config(str(built))
    config.clear_providers()
    model = og.Model(config)
    load = time.perf_counter() - started
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(inputs["folder"])
    ids = tokenizer(inputs["prompt"], add_special_tokens=False)["input_ids"]

    def run(batch: int, new: int):
        began = time.perf_counter()
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(ids) + new, batch_size=batch, do_sample=False)
        generator = og.Generator(model, params)
        generator.append_tokens(numpy.array([ids] * batch, dtype=numpy.int32))
        written: list[int] = []
        while len(written) < new and not generator.is_done():
            generator.generate_next_token()
            written.append(int(generator.get_next_tokens()[0]))
        return time.perf_counter() - began, written

    ttft, single, batched, greedy = decode_rates(run, tokens)
    return {"load_s": load, "prepare_s": prepare, "ttft_s": ttft, "decode_tps": single, "batch_tps": batched,
            "rss_mb": peak_rss_mb(), "lora": "the builder bakes one adapter into a model; no per-request switch measured",
            "greedy": tokenizer.decode(greedy), "greedy_ids": greedy}


def child(engine: str, inputs: dict, tokens: int, work: Path) -> dict:
    if engine.startswith("torch-"):
        return measure_torch(inputs, tokens, engine.split("-", 1)[1])
    if engine == "llama.cpp":
        return measure_llama_cpp(inputs, tokens)
    if engine == "llama.cpp-poll0":  # threads sleep while they wait instead of spinning
        return measure_llama_cpp(inputs, tokens, poll=0)
    if engine == "llama.cpp-1t":
        return measure_llama_cpp(inputs, tokens, threads=1)
    if engine == "ctranslate2":
        return measure_ctranslate2(inputs, tokens, work)
    return measure_onnxruntime_genai(inputs, tokens, work)


# -- the run ----------------------------------------------------------------------------------

def same_tokens(ids: list[int] | None, reference: list[int] | None) -> str:
    if not ids or not reference:
        return "-"
    same = next((index for index, (a, b) in enumerate(zip(ids, reference)) if a != b), min(len(ids), len(reference)))
    return f"{same}/{len(reference)}" + (" identical" if same == len(reference) == len(ids) else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated, from {', '.join(ENGINES)}")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per decode measurement")
    parser.add_argument("--busy", action="store_true", help="keep one core busy with a spinning process")
    parser.add_argument("--work", type=Path, help="folder for converted models (kept between runs)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.work or Path(tempfile.gettempdir()) / "unitune-bench-engines"
    work.mkdir(parents=True, exist_ok=True)
    if args.child:
        from unitune.runtime.loading import quiet_libraries

        quiet_libraries()
        result = child(args.child, json.loads((work / "inputs.json").read_text()), args.tokens, work)
        print(json.dumps(result))
        return
    inputs = prepare_inputs(work)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, {'one core kept busy' if spinner else 'idle'}; "
          f"prompt {inputs['prompt_tokens']} tokens, {args.tokens} new, {THREADS} threads, batch {BATCH}\n")
    results: dict[str, dict] = {}
    try:
        for engine in args.engines.split(","):
            run = subprocess.run([sys.executable, __file__, "--child", engine, "--tokens", str(args.tokens),
                                  "--work", str(work)], capture_output=True, text=True)
            lines = run.stdout.strip().splitlines()
            try:
                results[engine] = json.loads(lines[-1]) if lines else {}
            except json.JSONDecodeError:
                results[engine] = {}
            if run.returncode or not results[engine]:
                results[engine] = {"missing": f"failed: {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else run.returncode}"}
    finally:
        if spinner:
            spinner.kill()
    reference = results.get("torch-fp32", {})
    header = (f"{'engine':<19}{'load s':>8}{'prep s':>8}{'TTFT s':>8}{'x fp32':>7}{'tok/s':>7}{'x fp32':>7}"
              f"{'4-batch':>8}{'x fp32':>7}{'RSS MB':>8}  {'greedy vs fp32':<16} LoRA")
    print(header)
    for engine, result in results.items():
        if "missing" in result:
            print(f"{engine:<19}{result['missing']}")
            continue

        def ratio(key: str) -> str:
            return f"{result[key] / reference[key]:.2f}" if reference.get(key) else "-"

        prepare = result.get("prepare_s")
        print(f"{engine:<19}{result['load_s']:>8.1f}{(f'{prepare:.0f}' if prepare else '-'):>8}{result['ttft_s']:>8.2f}"
              f"{ratio('ttft_s'):>7}{result['decode_tps']:>7.1f}{ratio('decode_tps'):>7}{result['batch_tps']:>8.1f}"
              f"{ratio('batch_tps'):>7}{result['rss_mb']:>8.0f}  "
              f"{same_tokens(result.get('greedy_ids'), reference.get('greedy_ids')):<16} {result['lora']}")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    (work / f"results{'-busy' if args.busy else ''}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
