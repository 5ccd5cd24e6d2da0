"""The Whisper head describing segments while their audio arrives, without keeping the waveform."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from test_inference import speechlike

from ser_pipeline.audio import SAMPLE_RATE, SampleTail
from ser_pipeline.inference import StreamingScorer
from ser_pipeline.pipeline import WindowPlan
from ser_pipeline.segmentation import window_segments
from ser_pipeline.timing import StageClock


def test_a_sample_tail_reads_across_blocks_and_forgets_what_was_dropped():
    tail = SampleTail()
    for start in range(0, 100, 10):
        tail.append(np.arange(start, start + 10, dtype=np.float32))
    assert tail.read(5, 25).tolist() == list(range(5, 25))
    assert tail.read(95, 200).tolist() == list(range(95, 100))  # clipped to what arrived
    tail.drop_before(27)  # the blocks ending at or before 27 go; 20-29 stays
    assert tail.start == 20 and tail.read(20, 22).tolist() == [20, 21]
    with pytest.raises(ValueError, match="dropped"):
        tail.read(19, 22)
    tail.drop_before(1000)
    assert tail.start == tail.end == 100 and len(tail.read(100, 120)) == 0


@pytest.mark.parametrize("kind", ["window", "vad"])  # windows read alone; utterances also against the episode
def test_describing_while_decoding_matches_the_whole_episode_and_holds_only_a_tail(analyzer, monkeypatch, kind):
    import ser_pipeline.whisper_emotion as whisper_emotion

    assert analyzer.models.describes_while_decoding  # the default: the Whisper head alone reads the waveform
    monkeypatch.setattr(whisper_emotion, "DESCRIBE_MEL_FRAMES", 1000)  # describe every 10 s of segments
    samples = speechlike(62.0, seed=4)
    logmel = analyzer.front_end.episode(samples, torch.device("cpu"))
    final = [replace(s, kind=kind) for s in window_segments(len(samples) / SAMPLE_RATE, 2.0)]
    whole = analyzer.score(logmel, samples, final)

    scorer, plan, held = StreamingScorer(analyzer, stream_samples=True), WindowPlan(2.0, None), []
    block = 4 * SAMPLE_RATE
    for end in range(block, len(samples) + block, block):
        frames = min(end, len(samples)) * 100 // SAMPLE_RATE
        due = [replace(s, kind=kind) for s in plan.due(frames / 100)]
        scorer.update(logmel[:frames], due, StageClock(), samples[end - block : end], plan.pending_start_s)
        held.append(scorer.tail.end - scorer.tail.start)
    assert scorer.described  # most segments were described on the way
    assert max(held) < 20 * SAMPLE_RATE  # never more than the 10 s batch, a block and a segment
    streamed = scorer.finish(logmel, None, final)

    # The same segments read in other batches: bfloat16 on AMX or AVX512-BF16 CPUs rounds a little differently.
    assert list(streamed.columns["emotion"]) == list(whole.columns["emotion"])
    for column, values in whole.columns.items():
        if values.dtype != object:
            np.testing.assert_allclose(streamed.columns[column], values, atol=0.01, err_msg=column)
