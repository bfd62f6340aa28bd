"""Small NeMo checkpoints the tests make themselves: no NeMo weights ship in any package here.

Each model is built from NeMo's own modules (the mel preprocessor, a Jasper/QuartzNet-style
``ConvASREncoder``, NeMo's CTC and RNN-T heads and losses, its ``SpeakerDecoder``), trained on
CPU on espeak-ng speech until it has learnt that handful of utterances, and saved with
``save_to`` as a ``.nemo`` file, which the engines then load with NeMo's ``restore_from`` like
any downloaded checkpoint.

``python -m tests.nemo_models OUT`` builds all three into ``OUT`` and prints what training took.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiplatform.audio.decode import SAMPLE_RATE, Samples
from tests.speech import CONVERSATION, SENTENCES, speak_samples

#: What the CTC model learns: the shared test sentences (3 to 4 seconds each).
CTC_SENTENCES = SENTENCES
#: What the RNN-T model learns: short phrases, since NeMo's transducer losses on CPU cost
#: time in proportion to frames times characters.
RNNT_PHRASES = [
    "hello world",
    "good morning",
    "thank you very much",
    "see you soon",
    "the quick brown fox",
]
#: The voices the speaker model learns to tell apart, the sentences it hears them say, and two
#: it never hears, for the tests.
SPEAKER_VOICES = ["en-us", "en+f3", "en-gb", "en+m3", "en-gb-scotland", "en+f2"]
SPEAKER_TRAINING = [*SENTENCES[:4], *(text for _, text in CONVERSATION)]
SPEAKER_HELD_OUT = SENTENCES[4:6]

LABELS = list(" abcdefghijklmnopqrstuvwxyz'")


def normalize(text: str) -> str:
    """Text as the character models spell it: lower case letters, apostrophes and spaces."""
    return re.sub(r"\s+", " ", re.sub(r"[^a-z' ]", "", text.lower())).strip()


@dataclass(frozen=True)
class NemoModels:
    ctc: Path
    rnnt: Path
    speaker: Path


def preprocessor_config(features: int = 64, normalization: str = "per_feature") -> dict[str, Any]:
    return {
        "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
        "sample_rate": SAMPLE_RATE,
        "normalize": normalization,
        "window_size": 0.025,
        "window_stride": 0.01,
        "features": features,
        "n_fft": 512,
        "dither": 0.0,
        "pad_to": 0,
    }


def block(
    filters: int, kernel: int, *, stride: int = 1, repeat: int = 1, residual: bool = True
) -> dict[str, Any]:
    return {
        "filters": filters,
        "repeat": repeat,
        "kernel": [kernel],
        "stride": [stride],
        "dilation": [1],
        "dropout": 0.0,
        "residual": residual,
        "separable": True,
    }


def encoder_config(blocks: list[dict[str, Any]], features: int = 64) -> dict[str, Any]:
    return {
        "_target_": "nemo.collections.asr.modules.ConvASREncoder",
        "feat_in": features,
        "activation": "relu",
        "conv_mask": True,
        "jasper": blocks,
    }


def _batch(audio: Sequence[Samples]) -> tuple[Any, Any]:
    import torch

    signal = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(a) for a in audio], batch_first=True)
    return signal, torch.tensor([a.size for a in audio])


def _targets(texts: Sequence[str]) -> tuple[Any, Any]:
    import torch

    ids = [torch.tensor([LABELS.index(c) for c in text]) for text in texts]
    return (
        torch.nn.utils.rnn.pad_sequence(ids, batch_first=True),
        torch.tensor([len(t) for t in ids]),
    )


def _train(model: Any, step: Any, *, until: float, max_steps: int, lr: float = 3e-3) -> int:
    """Adam steps of ``step() -> loss`` until the loss is below ``until``; the steps taken."""
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for index in range(max_steps):  # noqa: B007 (the count is returned)
        loss = step()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < until:
            break
    # Batch norm's running statistics trail a fast-moving model after a few hundred steps; set
    # them to this data's statistics so that the saved model (in eval mode) is the one trained.
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average
    with torch.no_grad():
        step()
    for norm in norms:
        norm.momentum = 0.1
    model.eval()
    return index + 1


def ctc_model(blocks: list[dict[str, Any]]) -> Any:
    """An untrained character CTC model (``EncDecCTCModel``) with the encoder ``blocks``."""
    from nemo.collections.asr.models import EncDecCTCModel
    from omegaconf import OmegaConf

    config = {
        "sample_rate": SAMPLE_RATE,
        "labels": LABELS,
        "train_ds": None,
        "validation_ds": None,
        "preprocessor": preprocessor_config(),
        "spec_augment": None,
        "encoder": encoder_config(blocks),
        "decoder": {
            "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
            "feat_in": blocks[-1]["filters"],
            "num_classes": len(LABELS),
            "vocabulary": LABELS,
        },
        "decoding": {"strategy": "greedy"},
    }
    return EncDecCTCModel(cfg=OmegaConf.create(config))


def build_ctc(path: Path) -> Path:
    """A character CTC model (QuartzNet-style, 0.2 M parameters) that knows CTC_SENTENCES."""
    import torch

    torch.manual_seed(0)
    model = ctc_model(
        [
            block(128, 11, stride=2, residual=False),
            block(128, 13, repeat=2),
            block(128, 15, repeat=2),
            block(128, 17, repeat=2),
            block(128, 1, residual=False),
        ]
    )
    signal, lengths = _batch([speak_samples(s) for s in CTC_SENTENCES])
    targets, target_lengths = _targets([normalize(s) for s in CTC_SENTENCES])

    def step() -> Any:
        log_probs, encoded_lengths, _ = model(input_signal=signal, input_signal_length=lengths)
        return model.loss(
            log_probs=log_probs,
            targets=targets,
            input_lengths=encoded_lengths,
            target_lengths=target_lengths,
        )

    _train(model, step, until=0.05, max_steps=600)
    model.save_to(str(path))
    return path


def build_rnnt(path: Path) -> Path:
    """A character RNN-T model (8x subsampling, an LSTM prediction net) that knows RNNT_PHRASES.

    Trained with NeMo's pure-PyTorch transducer loss: its numba loss runs on CPU too, but 20
    times slower on these sizes."""
    import torch
    from nemo.collections.asr.losses.rnnt import RNNTLoss
    from nemo.collections.asr.models import EncDecRNNTModel
    from omegaconf import OmegaConf

    torch.manual_seed(0)
    blocks = [
        block(128, 11, stride=2, residual=False),
        block(128, 13, stride=2, residual=False),
        block(128, 15, stride=2, residual=False),
        block(128, 17, repeat=2),
        block(128, 1, residual=False),
    ]
    hidden = 128
    config = {
        "sample_rate": SAMPLE_RATE,
        "labels": LABELS,
        "train_ds": None,
        "validation_ds": None,
        "model_defaults": {"enc_hidden": hidden, "pred_hidden": hidden},
        "preprocessor": preprocessor_config(),
        "spec_augment": None,
        "encoder": encoder_config(blocks),
        "decoder": {
            "_target_": "nemo.collections.asr.modules.RNNTDecoder",
            "normalization_mode": None,
            "random_state_sampling": False,
            "blank_as_pad": True,
            "prednet": {"pred_hidden": hidden, "pred_rnn_layers": 1, "dropout": 0.0},
        },
        "joint": {
            "_target_": "nemo.collections.asr.modules.RNNTJoint",
            "log_softmax": None,
            "preserve_memory": False,
            "fuse_loss_wer": False,
            "jointnet": {
                "joint_hidden": hidden,
                "activation": "relu",
                "dropout": 0.0,
                "encoder_hidden": hidden,
                "pred_hidden": hidden,
            },
        },
        "decoding": {"strategy": "greedy_batch", "greedy": {"max_symbols": 10}},
    }
    model = EncDecRNNTModel(cfg=OmegaConf.create(config))
    training_loss = RNNTLoss(num_classes=len(LABELS), loss_name="pytorch")
    signal, lengths = _batch([speak_samples(s) for s in RNNT_PHRASES])
    targets, target_lengths = _targets([normalize(s) for s in RNNT_PHRASES])

    def step() -> Any:
        encoded, encoded_lengths = model(input_signal=signal, input_signal_length=lengths)
        decoded, decoded_lengths, _ = model.decoder(targets=targets, target_length=target_lengths)
        joint = model.joint(encoder_outputs=encoded, decoder_outputs=decoded)
        losses = training_loss(
            log_probs=joint,
            targets=targets,
            input_lengths=encoded_lengths,
            target_lengths=decoded_lengths,
        )
        return losses.mean()

    _train(model, step, until=0.1, max_steps=600)
    model.save_to(str(path))
    return path


def build_speaker(path: Path) -> Path:
    """A speaker-verification model (``EncDecSpeakerLabelModel``: a small convolutional encoder,
    attentive-statistics pooling, 64-dimensional embeddings) trained to tell SPEAKER_VOICES apart
    on SPEAKER_TRAINING."""
    import torch
    from nemo.collections.asr.models import EncDecSpeakerLabelModel
    from omegaconf import OmegaConf

    torch.manual_seed(0)
    features = 64
    blocks = [
        block(128, 3, residual=False),
        block(128, 7, repeat=2),
        block(128, 11, repeat=2),
        block(256, 1, residual=False),
    ]
    config = {
        "sample_rate": SAMPLE_RATE,
        "train_ds": None,
        "validation_ds": None,
        # No per-feature normalization: it subtracts each utterance's mean spectrum, the very
        # envelope that tells these synthetic voices apart.
        "preprocessor": preprocessor_config(features, normalization="NA"),
        "spec_augment": None,
        "encoder": encoder_config(blocks, features),
        "decoder": {
            "_target_": "nemo.collections.asr.modules.SpeakerDecoder",
            "feat_in": 256,
            "num_classes": len(SPEAKER_VOICES),
            "pool_mode": "attention",
            "emb_sizes": 64,
        },
        "loss": {
            "_target_": "nemo.collections.asr.losses.angularloss.AngularSoftmaxLoss",
            "scale": 30,
            "margin": 0.2,
        },
    }
    model = EncDecSpeakerLabelModel(cfg=OmegaConf.create(config))
    audio, labels = [], []
    for label, voice in enumerate(SPEAKER_VOICES):
        for sentence in SPEAKER_TRAINING:
            samples = speak_samples(sentence, voice)
            # Windows of 1.5 s, the length diarization embeds.
            for start in range(0, samples.size - SAMPLE_RATE, int(0.75 * SAMPLE_RATE)):
                audio.append(samples[start : start + int(1.5 * SAMPLE_RATE)])
                labels.append(label)
    signal, lengths = _batch(audio)
    targets = torch.tensor(labels)

    def step() -> Any:
        logits, _ = model(input_signal=signal, input_signal_length=lengths)
        return model.loss(logits=logits, labels=targets)

    _train(model, step, until=0.01, max_steps=40)
    model.save_to(str(path))
    return path


def build_all(folder: Path) -> NemoModels:
    folder.mkdir(parents=True, exist_ok=True)
    return NemoModels(
        ctc=build_ctc(folder / "ctc.nemo"),
        rnnt=build_rnnt(folder / "rnnt.nemo"),
        speaker=build_speaker(folder / "speaker.nemo"),
    )


def main(argv: Sequence[str]) -> None:
    folder = Path(argv[0])
    folder.mkdir(parents=True, exist_ok=True)
    for name, build in (("ctc", build_ctc), ("rnnt", build_rnnt), ("speaker", build_speaker)):
        started = time.perf_counter()
        build(folder / f"{name}.nemo")
        print(f"{name}: {time.perf_counter() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
