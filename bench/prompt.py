"""A reply's prompt in the worker: the whole conversation encoded anew, against its earlier turns looked up.

For conversations of T turns (a user message of ~100 tokens and a reply of
~300 each, then the new question), the CPU time of `fit_chat` for the next
reply's prompt: with an empty token cache (every turn encoded, as before
inference/token_cache.py) and with the earlier turns already in it (as the
previous reply's prompt left them). The median of `--repeat` calls each,
the two measured in turns in one process.

    .venv/bin/python bench/prompt.py --markdown
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import fmt, format_table, machine_description  # noqa: E402
from inference import chat_template  # noqa: E402
from inference.chat_template import fit_chat  # noqa: E402
from inference.token_cache import TokenCache  # noqa: E402

SYSTEM = "You are a helpful assistant. Answer clearly, and say so when you are not sure."
HEADERS = (
    "earlier turns",
    "prompt tokens",
    "encoded anew, ms CPU",
    "earlier turns looked up, ms CPU",
    "ratio",
)
SENTENCE = "The harbour was quiet that morning, and the boats rocked gently against the old stone quay. "


def conversation(turns: int, number: int) -> list[dict[str, str]]:
    """`turns` question-and-answer pairs and a new question, every text its own (`number` apart)."""
    messages = []
    for turn in range(turns):
        messages.append({"role": "user", "content": f"Question {number}.{turn}: " + SENTENCE * 5})
        messages.append({"role": "assistant", "content": f"Answer {number}.{turn}: " + SENTENCE * 15})
    messages.append({"role": "user", "content": f"And then, {number}?"})
    return messages


def timed_prompt(messages: list[dict[str, str]]) -> tuple[float, int]:
    """CPU ms of one `fit_chat` for `messages`, and the prompt's length."""
    started = time.thread_time()
    fitted = fit_chat(messages, SYSTEM, max_tokens=512, context_limit=32768)
    return (time.thread_time() - started) * 1000, len(fitted.ids)


def measure(turns: int, repeat: int) -> list[str]:
    encode = chat_template._encode_uncached
    uncached, cached, tokens = [], [], 0
    for number in range(repeat):
        messages = conversation(turns, number)
        # Cold: nothing remembered, every turn encoded.
        chat_template.token_cache = TokenCache(encode, max_ids=0)
        uncached.append(timed_prompt(messages)[0])
        # Warm: the previous reply's prompt (all but the last answer and the new question) encoded.
        chat_template.token_cache = TokenCache(encode)
        timed_prompt(messages[:-2])
        spent, tokens = timed_prompt(messages)
        cached.append(spent)
    before, after = statistics.median(uncached), statistics.median(cached)
    return [str(turns), f"{tokens:,}", fmt(before, 2), fmt(after, 2), fmt(before / after, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", default="1,4,16,32", help="earlier turns, comma-separated")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine_description()}")
    original = chat_template.token_cache
    try:
        rows = [measure(int(turns), args.repeat) for turns in args.turns.split(",")]
    finally:
        chat_template.token_cache = original
    print(format_table(HEADERS, rows, markdown=args.markdown))


if __name__ == "__main__":
    main()
