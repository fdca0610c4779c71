"""What moderation costs: each hook's latency per check, and the time the streaming gate adds to the first token.

1. Each hook, through the chain (so the thread-pool hop is counted, as in a
   moderation event's latency), on realistic texts: a user's message (about
   300 characters) for `check_input`, a stream window (the 64-character
   holdback plus 16 of context, what the gate passes at most tokens) for
   `check_stream`, and a whole reply (about 2,000 characters) for
   `check_output`. Hooks: rules (40 staff rules: words, phrases, regexes),
   PII, the offensive-language classifier, the self-reflection judge (through
   a real engine: the tiny model on the CPU by default, `--model mistral-7b`
   for the 7B architecture with random weights on a GPU), and the external
   endpoint adapter against a fake server on 127.0.0.1 (the adapter's own
   cost: JSON, HTTP, mapping; a real endpoint adds its network time).
2. The gate: a scripted reply streamed through `inference.streaming.stream_reply`
   (the worker's own loop) from an engine that yields one token every
   `--token-ms` ms, without moderation and with chains of hooks, side by side:
   time to the first `emit`, and the whole reply. The gate holds back 64
   characters before it releases anything, so most of what it adds to the
   first token is the time the engine takes to write them.

    .venv/bin/python bench/moderation.py                 # ~1 min on 2 cores
    .venv/bin/python bench/moderation.py --markdown --token-ms 6   # 6 ms/token: a 7B on an H100
    python3 bench/moderation.py --judge-only --model mistral-7b --markdown   # on a GPU: the judge at 7B size
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import fmt, format_table, machine_description, percentile  # noqa: E402
from inference.chat_template import sentencepiece_processor  # noqa: E402
from inference.moderation.base import CATEGORIES, Action, ModerationContext, Stage  # noqa: E402
from inference.moderation.chain import HookPolicy, ModerationChain  # noqa: E402
from inference.moderation.external import ExternalModerationHook  # noqa: E402
from inference.moderation.judge import SelfReflectionJudge  # noqa: E402
from inference.moderation.offensive import OffensiveLanguageHook  # noqa: E402
from inference.moderation.pii import PiiHook  # noqa: E402
from inference.moderation.rules import Rule, RulesHook  # noqa: E402
from inference.params import SamplingParams  # noqa: E402
from inference.streaming import ReplyModeration, StreamSettings, stream_reply  # noqa: E402
from tests.support.scripted_engine import ScriptedEngine  # noqa: E402

MESSAGE = (
    "Hi! I'm planning a week-long trip to Lisbon in October with two kids (8 and 11). Could you suggest "
    "a day-by-day itinerary that mixes museums, parks and beaches, with a budget of about 1,500 euros "
    "for food and activities? We don't like long drives, and my daughter is vegetarian."
)
REPLY = (
    "Here is a relaxed seven-day plan for Lisbon with children, keeping travel short and the budget in mind.\n\n"
    "Day 1: Baixa and Alfama. Ride tram 28 early in the morning before the crowds, walk up to the "
    "Miradouro de Santa Luzia, and have lunch at a tasca; most serve a vegetable soup and grilled "
    "vegetables. In the afternoon visit the Lisbon Aquarium's little sister, the Pavilion of Knowledge.\n\n"
    "Day 2: Belém. The Jerónimos Monastery opens at 9:30; book online to skip the queue. Eat pastéis de "
    "Belém, then let the kids run in the Jardim da Praça do Império. The Maritime Museum is a hit with "
    "eleven-year-olds.\n\n"
    "Day 3: Oceanário and Parque das Nações. The aquarium takes about three hours; the cable car along "
    "the river costs a few euros and the children will love it.\n\n"
    "Day 4: A beach day at Carcavelos, 25 minutes by train from Cais do Sodré. Bring lunch from a "
    "supermarket to save money.\n\n"
    "Day 5: Sintra by train (40 minutes). Pena Palace and the Moorish Castle; wear good shoes.\n\n"
    "Day 6: Gulbenkian Museum and its garden, then the LX Factory market for dinner.\n\n"
    "Day 7: Free morning, then the Time Out Market, where a vegetarian stall is easy to find.\n\n"
    "Budget: about 60 euros a day for food for three, 20-40 euros a day for activities; the Lisboa Card "
    "(about 25 euros per adult for 24 hours) covers transport and many museums. Have a wonderful trip!"
)
# The stream window: what the gate passes check_stream at most tokens (16 of context + the 64 held back).
WINDOW = REPLY[400:480]
CTX = ModerationContext("c", "m", "u", ({"role": "user", "content": MESSAGE},))


def staff_rules() -> list[Rule]:
    """Forty rules of the three kinds, as staff might keep them."""
    words = ["bomb", "meth", "nazi", "slur", "porn", "kill", "overdose", "cocaine", "heroin", "rape"]
    phrases = [
        "launch the missiles", "build a bomb", "buy a gun", "how to hack", "credit card dump",
        "kill myself", "make meth", "child abuse", "school shooting", "steal a car",
        "hate all of them", "send nudes", "wire the money", "fake passport", "poison someone",
    ]  # fmt: skip
    regexes = [
        r"\b\d{3}-\d{2}-\d{4}\b", r"\bbitcoin wallet\b", r"\bhow (do|can) i (kill|hurt)\b",
        r"\b(nigerian|foreign) prince\b", r"\bwhite power\b", r"\b(ak|ar)-?\d{2}\b", r"\bdark ?web\b",
        r"\bsuicide (method|note)s?\b", r"\bpipe ?bomb\b", r"\bdox+(ing)?\b", r"\bswat(ting)?\b",
        r"\bcarding\b", r"\bransomware\b", r"\bzero[- ]day\b", r"\bexploit kit\b",
    ]  # fmt: skip
    return (
        [Rule(CATEGORIES[i % 9], Action.BLOCK, "word", w) for i, w in enumerate(words)]
        + [Rule(CATEGORIES[i % 9], Action.BLOCK, "phrase", p) for i, p in enumerate(phrases)]
        + [Rule(CATEGORIES[i % 9], Action.FLAG, "regex", r) for i, r in enumerate(regexes)]
    )


class _FakeEndpoint(BaseHTTPRequestHandler):
    """A Mistral-schema moderation endpoint that answers at once, every score low."""

    body = json.dumps(
        {"id": "b", "model": "m", "results": [{"category_scores": dict.fromkeys(CATEGORIES, 0.01)}]}
    )

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        payload = self.body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


def fake_endpoint() -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeEndpoint)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v1/moderations"


def judge_engine(model: str, device: str | None):  # noqa: ANN201 - an Engine; torch is imported here only
    from bench.engine import _DTYPES, build_model
    from inference.engine import Engine

    device = device or ("cuda" if model == "mistral-7b" else "cpu")
    dtype = _DTYPES["bfloat16" if device == "cuda" else "float32"]
    built, name = build_model(model, device, dtype)
    return Engine(built, name=name)


# --- 1. per hook, per check ----------------------------------------------------------------


def hook_latencies(hooks: dict[str, object], runs: int) -> list[list[str]]:
    rows = []
    checks: dict[Stage, Callable[[ModerationChain], object]] = {
        Stage.INPUT: lambda chain: chain.check_input(CTX),
        Stage.STREAM: lambda chain: chain.check_stream(CTX, WINDOW),
        Stage.OUTPUT: lambda chain: chain.check_output(CTX, REPLY),
    }
    for name, hook in hooks.items():
        chain = ModerationChain([(hook, HookPolicy(budget_ms=60_000))])
        for stage, check in checks.items():
            if getattr(hook, f"check_{stage.value}", None) is None:
                rows.append([name, stage.value, "-", "-", "-", "not checked"])
                continue
            check(chain)  # warm up
            times, errors = [], set()
            for _ in range(runs):
                [verdict] = check(chain)
                times.append(verdict.latency_ms)
                if verdict.error:
                    errors.add(verdict.error)
            note = "; ".join(sorted(errors)) or verdict.action.value
            rows.append([name, stage.value, fmt(percentile(times, 50), 2), fmt(percentile(times, 99), 2),
                         fmt(max(times), 2), note])  # fmt: skip
    return rows


@contextlib.contextmanager
def background_replies(engine, count: int) -> Iterator[None]:  # noqa: ANN001 - an Engine
    """`count` replies decoding on `engine` (EOS ignored, restarted as they end) until the block exits."""
    stop = threading.Event()
    params = SamplingParams(temperature=0.0, max_tokens=512, ignore_eos=True)
    prompt = sentencepiece_processor().encode(MESSAGE)

    def reply() -> None:
        while not stop.is_set():
            for _ in engine.generate(prompt, params, should_stop=stop.is_set):
                pass

    threads = [threading.Thread(target=reply, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # let them join the batch
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        # Let the scheduler finish its step: a thread inside torch at exit aborts the process.
        deadline = time.monotonic() + 30
        while engine.load().active and time.monotonic() < deadline:
            time.sleep(0.05)


# --- 2. the gate and the first token --------------------------------------------------------


def stream_once(engine: ScriptedEngine, chain: ModerationChain | None) -> tuple[float, float, str]:
    """(ms to the first emit, ms for the whole reply, status) of one scripted reply."""
    started = time.perf_counter()
    first: list[float] = []

    def emit(_seq: int, _text: str) -> None:
        if not first:
            first.append(time.perf_counter())

    moderation = ReplyModeration(chain=chain, context=CTX, holdback_chars=64) if chain else None
    outcome = stream_reply(
        engine=engine,
        messages=list(CTX.messages),
        system_prompt=None,
        params=SamplingParams(temperature=0.0, max_tokens=2000),
        settings=StreamSettings(context_limit=32768),
        emit=emit,
        stop_requested=lambda: False,
        moderation=moderation,
    )
    ended = time.perf_counter()
    return (first[0] - started) * 1000.0, (ended - started) * 1000.0, outcome.status


def gate_rows(chains: dict[str, ModerationChain | None], token_ms: float, runs: int) -> list[list[str]]:
    engine = ScriptedEngine({"": REPLY}, token_ms / 1000.0, max_batch=1)
    rows = []
    baseline: float | None = None
    for name, chain in chains.items():
        stream_once(engine, chain)  # warm up
        results = [stream_once(engine, chain) for _ in range(runs)]
        ttft = percentile([r[0] for r in results], 50)
        total = percentile([r[1] for r in results], 50)
        baseline = ttft if baseline is None else baseline
        rows.append(
            [name, fmt(token_ms, 0), fmt(ttft, 1), fmt(ttft - baseline, 1), fmt(total, 0), results[-1][2]]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100, help="checks per hook and stage (default 100)")
    parser.add_argument("--stream-runs", type=int, default=5, help="replies per chain (default 5)")
    parser.add_argument("--token-ms", type=float, nargs="+", default=[0.0, 6.0], help="default 0 6")
    parser.add_argument("--model", choices=("tiny", "mistral-7b"), default="tiny", help="the judge's engine")
    parser.add_argument("--device", help="the judge's device (default cpu for tiny, cuda for mistral-7b)")
    parser.add_argument(
        "--judge-only", action="store_true", help="only the judge, alone and under load (for a GPU run)"
    )
    parser.add_argument(
        "--load", type=int, default=16, help="replies decoding while the judge runs (default 16)"
    )
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)

    print(machine_description())
    engine = judge_engine(args.model, args.device)
    judge_name = f"judge ({engine.info.name}, {engine.info.device})"
    headers = ["hook", "check", "p50", "p99", "max", "verdict"]
    if args.judge_only:
        judge = {judge_name: SelfReflectionJudge(engine=engine, timeout_s=60)}
        print(f"\n## The judge alone, ms ({args.runs} runs)\n")
        print(format_table(headers, hook_latencies(judge, args.runs), markdown=args.markdown))
        with background_replies(engine, args.load):
            print(
                f"\n## The judge while {args.load} replies decode on the same engine, ms ({args.runs} runs)\n"
            )
            print(format_table(headers, hook_latencies(judge, args.runs), markdown=args.markdown))
        return 0
    hooks: dict[str, object] = {
        "rules (40)": RulesHook(staff_rules()),
        "pii": PiiHook(),
        "offensive": OffensiveLanguageHook(),
        judge_name: SelfReflectionJudge(engine=engine),
        "external (fake, 127.0.0.1)": ExternalModerationHook(url=fake_endpoint(), schema="mistral"),
    }
    print(f"\n## Latency per check, ms ({args.runs} runs; through the chain, pool hop included)\n")
    print(format_table(headers, hook_latencies(hooks, args.runs), markdown=args.markdown))

    budget = HookPolicy(budget_ms=60_000)
    base = [(RulesHook(staff_rules()), budget), (PiiHook(), budget)]
    chains: dict[str, ModerationChain | None] = {
        "no moderation": None,
        "rules + pii": ModerationChain(base),
        "rules + pii + offensive": ModerationChain([*base, (hooks["offensive"], budget)]),
        "... + judge (input, output)": ModerationChain(
            [*base, (hooks["offensive"], budget), (SelfReflectionJudge(engine=engine), budget)]
        ),
    }
    print(f"\n## The gate: a {len(REPLY)}-character scripted reply, median of {args.stream_runs}\n")
    headers = ["chain", "ms/token", "first text ms", "added ms", "whole reply ms", "status"]
    rows = [row for token_ms in args.token_ms for row in gate_rows(chains, token_ms, args.stream_runs)]
    print(format_table(headers, rows, markdown=args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
