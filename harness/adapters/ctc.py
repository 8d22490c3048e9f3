"""CTC in numpy: the negative log-likelihood, greedy decoding and the label error rate.

One definition for every backend's evaluation (harness.adapters.metrics), and the reference
the adapters' ctc losses are tested against. Conventions are the canonical loss's
(harness.spec.components.LOSSES['ctc']): logits (N, T, C) with class 0 the blank; label
strings (N, S) of classes >= 1, padded with 0 after the string.
"""

from __future__ import annotations

import numpy as np
from rapidfuzz.distance import Levenshtein
from scipy.special import log_softmax, logsumexp

BLANK = 0


def label_lengths(labels: np.ndarray) -> np.ndarray:
    """The length of each 0-padded label string: its count of nonzero labels, int64 (N,)."""
    return (np.asarray(labels) > 0).sum(axis=1).astype(np.int64)


def ctc_negative_log_likelihood(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """-log p(string | x) per sample, summed over every alignment (Graves et al. 2006, eq. 8-10), float64 (N,).

    The forward variable alpha_t(s) runs over the extended string (blank, l1, blank, l2, ..., blank),
    2S + 1 positions, in log space: alpha_t(s) = logsumexp(alpha_{t-1}(s), alpha_{t-1}(s-1),
    alpha_{t-1}(s-2) if l'(s) is a label unlike l'(s-2)) + log y_t(l'(s)). A position only reads
    smaller positions, so the padding past a string's end never reaches its result. An impossible
    string (more steps needed than T) gives +inf, as PyTorch's zero_infinity=False does.

    Args:
        logits: (N, T, C) scores before the softmax.
        labels: (N, S) int label strings, 0-padded.
    """
    log_probs = log_softmax(np.asarray(logits, dtype=np.float64), axis=-1)  # (N, T, C)
    labels = np.asarray(labels, dtype=np.int64)
    count, steps, _ = log_probs.shape
    extended = np.zeros((count, 2 * labels.shape[1] + 1), dtype=np.int64)
    extended[:, 1::2] = labels
    rows = np.arange(count)[:, None]
    # skip from s-2 allowed where l'(s) is a label that differs from l'(s-2)
    skip = np.zeros(extended.shape, dtype=bool)
    skip[:, 2:] = (extended[:, 2:] != BLANK) & (extended[:, 2:] != extended[:, :-2])

    alpha = np.full(extended.shape, -np.inf)
    alpha[:, 0] = log_probs[:, 0, BLANK]
    if extended.shape[1] > 1:
        alpha[:, 1] = log_probs[np.arange(count), 0, extended[:, 1]]
    for step in range(1, steps):
        stay = alpha
        advance = np.concatenate([np.full((count, 1), -np.inf), alpha[:, :-1]], axis=1)
        jump = np.concatenate([np.full((count, 2), -np.inf), alpha[:, :-2]], axis=1)
        jump = np.where(skip, jump, -np.inf)
        with np.errstate(invalid="ignore"):  # logsumexp of all -inf is -inf, not an error
            alpha = logsumexp(np.stack([stay, advance, jump]), axis=0) + log_probs[rows, step, extended]
    ends = 2 * label_lengths(labels)  # the final blank; the last label sits one before it
    last_blank = alpha[np.arange(count), ends]
    last_label = np.where(ends > 0, alpha[np.arange(count), np.maximum(ends - 1, 0)], -np.inf)
    with np.errstate(invalid="ignore"):
        return -np.logaddexp(last_blank, last_label)


def greedy_decode(logits: np.ndarray) -> list[list[int]]:
    """Best path decoding: the argmax class at every step, repeats merged, blanks dropped. (N, T, C) -> N strings."""
    best = np.asarray(logits).argmax(axis=-1)  # (N, T)
    new = np.ones(best.shape, dtype=bool)
    new[:, 1:] = best[:, 1:] != best[:, :-1]
    keep = new & (best != BLANK)
    return [row[mask].tolist() for row, mask in zip(best, keep)]


def sequence_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """loss: mean ctc negative log-likelihood; accuracy: share of strings decoded exactly (greedy);
    error_rate: label error rate, the summed edit distance (insertions, deletions, substitutions)
    between decoded and true strings over the summed true lengths (Graves et al. 2006, section 5.1).
    Can exceed 1 when the decoder inserts many labels."""
    decoded = greedy_decode(logits)
    truths = [row[row > 0].tolist() for row in np.asarray(labels)]
    distance = sum(Levenshtein.distance(guess, truth) for guess, truth in zip(decoded, truths))
    exact = sum(guess == truth for guess, truth in zip(decoded, truths))
    total = sum(len(truth) for truth in truths)
    return {
        "loss": float(ctc_negative_log_likelihood(logits, labels).mean()),
        "accuracy": exact / len(truths),
        "error_rate": distance / total if total else float("nan"),
    }
