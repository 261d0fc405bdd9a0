"""Text augmentation, drawn afresh every epoch: links and user handles toggled, posts cut to their
first sentence.

Invariance to links and user handles (the behavioural tests ask that adding either does not flip a
confident label) is taught in one of two ways (train_job/epoch_inputs.py):

- replace (consistency weight 0): a share of the posts is trained on in perturbed form;
- consistency (weight > 0): every post is trained on as written; a perturbed twin of a share of
  them joins the same batch, and a KL term pulls its prediction towards the original's. The label
  loss then sees the data's own link and handle shares, and the twin teaches the invariance.
"""

from __future__ import annotations

import random
import re
import string

from train_job.config import TrainConfig

_URL = re.compile(r"https?://\S+|www\.\S+")
_HANDLE = re.compile(r"@\w+")


def _toggle(texts: list[str], rate: float, rng: random.Random, pattern: re.Pattern, add):
    """In `rate` of the posts: remove every match of `pattern` if there is one, else add one."""
    out = []
    for text in texts:
        if rng.random() < rate:
            text = " ".join(pattern.sub(" ", text).split()) if pattern.search(text) else add(text)
        out.append(text)
    return out


_CODE_CHARS = string.ascii_letters + string.digits


def _random_link(rng: random.Random) -> str:
    """A link as a tweet carries one: a t.co short link with a fresh 10-character code, so that
    without placeholders the model meets a new code each time, as it will when serving."""
    return "https://t.co/" + "".join(rng.choices(_CODE_CHARS, k=10))


def _random_handle(rng: random.Random) -> str:
    return (
        "@"
        + "".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 10)))
        + (str(rng.randint(0, 99)) if rng.random() < 0.3 else "")
    )


def toggle_links(texts: list[str], rate: float, rng: random.Random) -> list[str]:
    """In `rate` of the posts, drop the links if there are any, else append one. Official
    accounts' posts usually carry a link (70% of the training posts with a link are real), so
    without this the model takes "has a link" as evidence of "real". The added link's code has a
    stream of its own, so which posts are toggled depends on `rng` alone."""
    codes = random.Random(rng.random())
    return _toggle(texts, rate, rng, _URL, lambda text: f"{text} {_random_link(codes)}")


def toggle_handles(texts: list[str], rate: float, rng: random.Random) -> list[str]:
    """The same for user handles: 80% of the training posts that mention one are real (official
    accounts tag and retweet each other)."""
    names = random.Random(rng.random())
    return _toggle(texts, rate, rng, _HANDLE, lambda text: f"{_random_handle(names)} {text}")


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_HASH = re.compile(r"#(\w)")
_RETWEET = re.compile(r"^\s*RT\b\s*:?\s*")


def first_sentence(text: str) -> str:
    """A post cut to a news headline: its first sentence, without links, handles or hashtag
    signs."""
    plain = _RETWEET.sub("", _HANDLE.sub(" ", _URL.sub(" ", text)))
    first = _SENTENCE_END.split(plain.strip(), maxsplit=1)[0]
    return " ".join(_HASH.sub(r"\1", first).split()) or text


def cut_to_first_sentence(texts: list[str], rate: float, rng: random.Random) -> list[str]:
    """In `rate` of the posts, keep only the first sentence. Headlines from other sources carry
    none of a post's style (links, handles, hashtags, length), which in CONSTRAINT marks official
    accounts' real posts; this teaches the model to judge a post by what it claims."""
    return [first_sentence(text) if rng.random() < rate else text for text in texts]


def perturb(texts: list[str], cfg: TrainConfig, epoch: int) -> list[str]:
    """The epoch's perturbed copy of the training posts. A fresh draw per epoch (seeded by seed
    and epoch, so a resumed run draws the same), so no post stays altered for the whole run; each
    perturbation has its own stream."""
    texts = cut_to_first_sentence(
        texts, cfg.headline_augmentation, random.Random(f"head/{cfg.seed}/{epoch}")
    )
    texts = toggle_links(texts, cfg.link_augmentation, random.Random(f"links/{cfg.seed}/{epoch}"))
    return toggle_handles(
        texts, cfg.handle_augmentation, random.Random(f"handles/{cfg.seed}/{epoch}")
    )
