"""The in-process stage timings of `ser-pipeline bench` on each device, without the whole-process
runs (so without Prefect): for GPU machines that hold torch but not the whole install.

    python scripts/bench_stages.py [--devices cuda,cpu] [--minutes 60] [--output stages.json]

The episode is the bench's own (built in the cache, `$SER_CACHE_DIR/bench/shared`, from
../shared/data/episodes; a cache that already holds `unit.mp3` needs no source). Each device
first scores a 15-minute episode (warm-up: kernels, allocator), then the timed one.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from ser_pipeline.bench import bench_archive, decode_floor, episode_file, machine, pipeline_stages  # noqa: E402
from ser_pipeline.files import cache_root  # noqa: E402
from ser_pipeline.inference import Analyzer  # noqa: E402
from ser_pipeline.training.data import shared_data_dir  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", default="cuda,cpu")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    cache, source = cache_root() / "bench" / "shared", shared_data_dir() / "episodes"
    archives = {m: bench_archive(m, source, cache) for m in (15.0, args.minutes)}
    result = {"machine": machine(), "minutes": args.minutes}
    for device in args.devices.split(","):
        analyzer = Analyzer(device=device)
        with_cuda = analyzer.device.type == "cuda"
        pipeline_stages(archives[15.0], Path(f"/tmp/bench-stages-{device}/warm"), analyzer)
        if with_cuda:
            torch.cuda.reset_peak_memory_stats()
        began = time.perf_counter()
        stages = pipeline_stages(archives[args.minutes], Path(f"/tmp/bench-stages-{device}/run"), analyzer)
        seconds = time.perf_counter() - began
        entry = {"stages": stages, "seconds": seconds, "x_real_time": args.minutes * 60 / seconds}
        if with_cuda:
            entry["gpu"] = torch.cuda.get_device_name(0)
            entry["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        result[device] = entry
        print(device, json.dumps(entry), flush=True)
    result["decode_floor"] = decode_floor(episode_file(archives[args.minutes]))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    text = json.dumps(result, indent=1)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
