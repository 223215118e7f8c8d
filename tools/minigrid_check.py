#!/usr/bin/env python3
"""Check rims's MiniGrid environments (src/rl, docs/spec.md §7) against MiniGrid itself.

Not run by CI: it needs the `minigrid` Python package, which is not a dependency of the
project. Install it in a throwaway virtual environment:

    python3 -m venv /tmp/mgvenv && /tmp/mgvenv/bin/pip install minigrid
    /tmp/mgvenv/bin/python tools/minigrid_check.py --episodes 200 --seed 0

Two checks:

1. Semantics, step by step. For every environment in the list (MiniGrid's Empty, DoorKey and
   Memory registrations, rims's three families, and beyond them Empty-Random, LavaGap,
   LavaCrossing and a "scatter" world of every object, colour and door state), it resets
   MiniGrid with seeds SEED, SEED+1, ..., exports the layout (grid encoding, agent position and
   direction, max_steps, see_through_walls, Memory's pickup-as-toggle and exits), plays an
   action sequence in MiniGrid until the episode ends, then gives the layout and the actions to
   rims (`cargo run --release --example minigrid_trace`, which builds the rims `Env` with
   `Env::new`) and compares, at reset and after every step, `obs['image']` (all 147 bytes),
   `obs['direction']`, the reward (to 1e-6), terminated, truncated, the agent's position and
   direction and what it carries. Episodes cycle through three policies: uniformly random
   actions, and a BFS-guided policy (fetch the key, open the door, walk to the goal; in Memory
   walk to the matching object, or now and then to the other one) that takes a random action
   with probability 0.25 or 0.05. One episode in six runs under a small random max_steps so that
   the limit, and the limit on the step that reaches the goal, happen often.

2. Layouts (`--layouts N`, 0 to skip). rims draws its layouts from its own generator, so they
   cannot equal MiniGrid's one for one; instead it compares distributions: N layouts of each
   rims world (`minigrid_trace --layouts`) against N MiniGrid resets of the matching
   registration, feature by feature (agent x, y and direction, each object's position, the walls,
   Memory's exits): every value's frequency must agree within 5 standard errors, and where
   the whole support is small (at most N/20 distinct layouts in MiniGrid's sample) the two sets
   of layouts must be equal.

It prints a summary (episodes, steps compared, mismatches, the first mismatch in detail) and
exits 1 on any mismatch, 2 on a usage or setup error.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

try:
    import gymnasium as gym
    import minigrid
    import numpy as np
    from minigrid.core.grid import Grid
    from minigrid.core.mission import MissionSpace
    from minigrid.core.world_object import Ball, Box, Door, Floor, Goal, Key, Lava, Wall
    from minigrid.envs import MemoryEnv
    from minigrid.minigrid_env import MiniGridEnv
except ImportError as e:  # pragma: no cover
    sys.exit(
        f"minigrid_check: {e}\n"
        "install MiniGrid first: python3 -m venv /tmp/mgvenv && "
        "/tmp/mgvenv/bin/pip install minigrid"
    )

REPO = Path(__file__).resolve().parent.parent
COLORS = ["red", "green", "blue", "purple", "yellow", "grey"]
DIRS = [(1, 0), (0, 1), (-1, 0), (0, -1)]
LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE, DONE = range(7)

# MiniGrid registrations played step by step. rims's families first, then layouts that only
# rims's rules (Env::new) cover: a random start, random hallway lengths, lava.
STEP_ENVS = [
    "MiniGrid-Empty-5x5-v0",
    "MiniGrid-Empty-6x6-v0",
    "MiniGrid-Empty-8x8-v0",
    "MiniGrid-Empty-16x16-v0",
    "MiniGrid-DoorKey-5x5-v0",
    "MiniGrid-DoorKey-6x6-v0",
    "MiniGrid-DoorKey-8x8-v0",
    "MiniGrid-DoorKey-16x16-v0",
    "MiniGrid-MemoryS7-v0",
    "MiniGrid-MemoryS9-v0",
    "MiniGrid-MemoryS13-v0",
    "MiniGrid-Empty-Random-6x6-v0",
    "MiniGrid-MemoryS13Random-v0",
    "MiniGrid-LavaGapS7-v0",
    "MiniGrid-LavaCrossingS9N1-v0",
    "scatter",
]

# rims world name -> MiniGrid registration, for the layout distributions.
LAYOUT_WORLDS = {
    "empty-5x5": "MiniGrid-Empty-5x5-v0",
    "empty-6x6": "MiniGrid-Empty-6x6-v0",
    "empty-8x8": "MiniGrid-Empty-8x8-v0",
    "empty-16x16": "MiniGrid-Empty-16x16-v0",
    "doorkey-5x5": "MiniGrid-DoorKey-5x5-v0",
    "doorkey-6x6": "MiniGrid-DoorKey-6x6-v0",
    "doorkey-8x8": "MiniGrid-DoorKey-8x8-v0",
    "doorkey-16x16": "MiniGrid-DoorKey-16x16-v0",
    "memory-s7": "MiniGrid-MemoryS7-v0",
    "memory-s9": "MiniGrid-MemoryS9-v0",
    "memory-s13": "MiniGrid-MemoryS13-v0",
}


class ScatterEnv(MiniGridEnv):
    """A walled room of random size with random objects of every kind, colour and door state
    (boxes empty, since rims's hold nothing), the agent on any cell it may stand on."""

    def __init__(self, width, height, max_steps, see_through_walls, **kwargs):
        super().__init__(
            mission_space=MissionSpace(mission_func=lambda: "scatter"),
            width=width,
            height=height,
            max_steps=max_steps,
            see_through_walls=see_through_walls,
            **kwargs,
        )

    def _gen_grid(self, width, height):
        self.grid = Grid(width, height)
        self.grid.wall_rect(0, 0, width, height)
        inner = (width - 2) * (height - 2)
        for _ in range(int(self._rand_int(0, max(1, inner // 2)))):
            kind = int(self._rand_int(0, 9))
            color = self._rand_elem(COLORS)
            if kind == 0:
                obj = Wall(color)
            elif kind == 1:
                obj = Floor(color)
            elif kind == 2:
                state = int(self._rand_int(0, 3))
                obj = Door(color, is_open=state == 0, is_locked=state == 2)
            elif kind == 3:
                obj = Key(color)
            elif kind == 4:
                obj = Ball(color)
            elif kind == 5:
                obj = Box(color)
            elif kind == 6:
                obj = Goal()
            elif kind == 7:
                obj = Lava()
            else:
                obj = Key(color)
            self.place_obj(obj, max_tries=100)
        stand = [
            (x, y)
            for x in range(width)
            for y in range(height)
            if (c := self.grid.get(x, y)) is None
            or (c.type in ("floor", "door") and c.can_overlap())
        ]
        self.agent_pos = stand[int(self._rand_int(0, len(stand)))]
        self.agent_dir = int(self._rand_int(0, 4))
        self.mission = "scatter"


def make_env(name, rng, small_limit):
    """A MiniGrid env for `name`; `small_limit` gives it a short random max_steps."""
    if name == "scatter":
        w, h = int(rng.integers(4, 12)), int(rng.integers(4, 12))
        limit = int(rng.integers(5, 40)) if small_limit else 4 * w * h
        return ScatterEnv(w, h, limit, bool(rng.integers(0, 2)))
    kwargs = {"disable_env_checker": True}
    if small_limit:
        kwargs["max_steps"] = int(rng.integers(5, 40))
    return gym.make(name, **kwargs)


def encode_obj(obj):
    return None if obj is None else [int(v) for v in obj.encode()]


def export_layout(u):
    """The layout of a freshly reset MiniGrid env in minigrid_trace's input form."""
    if u.agent_view_size != 7:
        raise ValueError("rims's view is 7x7")
    if u.carrying is not None:
        raise ValueError("rims's envs start with an empty hand")
    for x in range(u.grid.width):
        for y in range(u.grid.height):
            c = u.grid.get(x, y)
            if c is not None and c.type == "box" and c.contains is not None:
                raise ValueError("rims's boxes hold nothing")
    layout = {
        "grid": u.grid.encode().tolist(),
        "agent_pos": [int(u.agent_pos[0]), int(u.agent_pos[1])],
        "agent_dir": int(u.agent_dir),
        "max_steps": int(u.max_steps),
        "see_through_walls": bool(u.see_through_walls),
        "pickup_is_toggle": isinstance(u, MemoryEnv),
        "exits": None,
    }
    if isinstance(u, MemoryEnv):
        layout["exits"] = {
            "success": [int(v) for v in u.success_pos],
            "failure": [int(v) for v in u.failure_pos],
        }
    return layout


# ---------------------------------------------------------------- the guided policy


def walkable(cell):
    """Cells the planner walks through: empty, floor, goal, open or (toggled on the way)
    closed doors. Lava is avoided."""
    if cell is None:
        return True
    if cell.type == "door":
        return not cell.is_locked
    return cell.type in ("floor", "goal")


def bfs(u, target, face):
    """First action of a shortest turn/forward path to stand on `target` (face=False) or to
    face it (face=True); 'here' when already there, None when unreachable."""
    start = (int(u.agent_pos[0]), int(u.agent_pos[1]), int(u.agent_dir))

    def reached(s):
        x, y, d = s
        if face:
            return (x + DIRS[d][0], y + DIRS[d][1]) == target
        return (x, y) == target

    if reached(start):
        return "here"
    first = {start: None}
    queue = collections.deque([start])
    while queue:
        s = queue.popleft()
        x, y, d = s
        nxt = [((x, y, (d + 3) % 4), LEFT), ((x, y, (d + 1) % 4), RIGHT)]
        fx, fy = x + DIRS[d][0], y + DIRS[d][1]
        if 0 <= fx < u.grid.width and 0 <= fy < u.grid.height:
            cell = u.grid.get(fx, fy)
            if walkable(cell) or (not face and (fx, fy) == target):
                nxt.append(((fx, fy, d), FORWARD))
        for t, a in nxt:
            if t in first:
                continue
            first[t] = a if first[s] is None else first[s]
            if reached(t):
                a0 = first[t]
                if a0 == FORWARD:
                    # A closed door in front: open it first.
                    c = u.grid.get(*(np.array(start[:2]) + DIRS[start[2]]))
                    if c is not None and c.type == "door" and not c.is_open:
                        return TOGGLE
                return a0
            queue.append(t)
    return None


def cells_of(u, pred):
    return [
        (x, y)
        for x in range(u.grid.width)
        for y in range(u.grid.height)
        if (c := u.grid.get(x, y)) is not None and pred(c)
    ]


def guided(u, rng, memory_target):
    """A scripted action: the matching Memory exit, else the goal, else the key of a locked
    door and then the door. Random where none applies."""
    if memory_target is not None:
        a = bfs(u, memory_target, face=False)
        return a if isinstance(a, int) else int(rng.integers(0, 7))
    for goal in cells_of(u, lambda c: c.type == "goal"):
        a = bfs(u, goal, face=False)
        if isinstance(a, int):
            return a
    locked = cells_of(u, lambda c: c.type == "door" and c.is_locked)
    colors = {u.grid.get(*p).color for p in locked}
    carrying = u.carrying
    if carrying is not None and carrying.type == "key" and carrying.color in colors:
        for door in locked:
            if u.grid.get(*door).color == carrying.color:
                a = bfs(u, door, face=True)
                if a == "here":
                    return TOGGLE
                if a is not None:
                    return a
    if carrying is not None:
        fx, fy = u.front_pos
        return DROP if u.grid.get(fx, fy) is None else LEFT
    for key in cells_of(u, lambda c: c.type == "key" and c.color in colors):
        a = bfs(u, key, face=True)
        if a == "here":
            return PICKUP
        if a is not None:
            return a
    return int(rng.integers(0, 7))


# ---------------------------------------------------------------- playing and comparing


def record(u, obs, step, reward, terminated, truncated):
    return {
        "step": step,
        "image": obs["image"].flatten().tolist(),
        "direction": int(obs["direction"]),
        "reward": float(reward),
        "terminated": bool(terminated),
        "truncated": bool(truncated),
        "pos": [int(u.agent_pos[0]), int(u.agent_pos[1])],
        "dir": int(u.agent_dir),
        "carrying": encode_obj(u.carrying),
    }


def play(name, seed, policy, small_limit):
    """One MiniGrid episode: its layout, the actions played and what each step gave."""
    rng = np.random.default_rng([seed, 7919])
    env = make_env(name, rng, small_limit)
    obs, _ = env.reset(seed=seed)
    u = env.unwrapped
    layout = export_layout(u)
    pretty = u.pprint_grid()
    memory_target = None
    if isinstance(u, MemoryEnv):
        memory_target = u.success_pos if rng.random() < 0.75 else u.failure_pos
        memory_target = (int(memory_target[0]), int(memory_target[1]))
    eps = {"random": 1.0, "guided": 0.25, "clean": 0.05}[policy]
    steps = [record(u, obs, 0, 0.0, False, False)]
    actions = []
    events = collections.Counter()
    while True:
        if rng.random() < eps:
            a = int(rng.integers(0, 7))
        else:
            a = guided(u, rng, memory_target)
        actions.append(a)
        fx, fy = (int(v) for v in u.front_pos)
        before = u.grid.get(fx, fy) if 0 <= fx < u.grid.width and 0 <= fy < u.grid.height else None
        front_before = encode_obj(before)
        held_before = u.carrying
        obs, reward, terminated, truncated, _ = env.step(a)
        events.update(classify(a, front_before, before, held_before, u, terminated, reward))
        steps.append(record(u, obs, len(actions), reward, terminated, truncated))
        if terminated or truncated:
            break
    env.close()
    return layout, actions, steps, pretty, events


def classify(a, front_before, before, held_before, u, terminated, reward):
    """Names for what a step did that changed the world, to report what the episodes covered."""
    ev = []
    if held_before is None and u.carrying is not None:
        ev.append("pickup " + u.carrying.type)
    if held_before is not None and u.carrying is None:
        ev.append("drop")
    if before is not None and a in (TOGGLE, PICKUP):
        after = encode_obj(before) if before.type == "door" else None
        if before.type == "door" and front_before != after:
            ev.append({(2, 0): "unlock", (1, 0): "open", (0, 1): "close"}[(front_before[2], after[2])])
        if before.type == "box" and u.grid.get(*u.front_pos) is None:
            ev.append("open box")
    if terminated:
        cell = u.grid.get(*u.agent_pos)
        if cell is not None and cell.type == "lava":
            ev.append("lava")
        elif reward == 0:
            ev.append("wrong exit")
    return ev


def trace_binary(build):
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    binary = target / "release" / "examples" / "minigrid_trace"
    if build:
        subprocess.run(
            ["cargo", "build", "--release", "--example", "minigrid_trace"],
            cwd=REPO,
            check=True,
        )
    if not binary.exists():
        sys.exit(f"minigrid_check: {binary} is missing (build it, or drop --no-build)")
    return binary


def run_rims(binary, args):
    return subprocess.run(
        [str(binary), *args], capture_output=True, text=True, check=False
    )


def rims_trace(binary, episodes):
    """rims's steps for each (layout, actions), by episode id."""
    lines = []
    for i, (layout, actions) in enumerate(episodes):
        lines.append(json.dumps({"id": i, **layout, "actions": actions}))
    proc = subprocess.run(
        [str(binary)], input="\n".join(lines) + "\n", capture_output=True, text=True
    )
    if proc.returncode != 0:
        sys.exit(f"minigrid_check: minigrid_trace failed: {proc.stderr.strip()}")
    out = collections.defaultdict(list)
    for line in proc.stdout.splitlines():
        rec = json.loads(line)
        out[rec.pop("id")].append(rec)
    return out


FIELDS = ["image", "direction", "reward", "terminated", "truncated", "pos", "dir", "carrying"]


def differs(field, a, b):
    if field == "reward":
        return abs(a - b) > 1e-6
    return a != b


def view_rows(image):
    """The 7x7 view as rows of 'oid/colour/state' strings, row 0 the farthest."""
    img = np.array(image, dtype=np.uint8).reshape(7, 7, 3)
    return [" ".join("%d/%d/%d" % tuple(img[x, y]) for x in range(7)) for y in range(7)]


def check_steps(args, binary):
    meta, episodes, mg_steps = [], [], []
    policies = ["random", "guided", "clean"]
    coverage = collections.Counter()
    for name in args.envs:
        for k in range(args.episodes):
            seed = args.seed + k
            policy = policies[k % 3]
            small = k % 6 == 5
            layout, actions, steps, pretty, events = play(name, seed, policy, small)
            coverage.update(events)
            meta.append((name, seed, policy, small, pretty))
            episodes.append((layout, actions))
            mg_steps.append(steps)
    rims = rims_trace(binary, episodes)

    per_env = collections.defaultdict(lambda: collections.Counter())
    n_steps = n_bad_steps = 0
    first = None
    bad_episodes = 0
    for i, steps in enumerate(mg_steps):
        name = meta[i][0]
        theirs = rims.get(i, [])
        c = per_env[name]
        c["episodes"] += 1
        last = steps[-1]
        c["terminated"] += last["terminated"]
        c["truncated"] += last["truncated"]
        c["success"] += last["reward"] > 0
        c["both"] += last["terminated"] and last["truncated"]
        bad = False
        for t in range(max(len(steps), len(theirs))):
            mine = steps[t] if t < len(steps) else None
            other = theirs[t] if t < len(theirs) else None
            n_steps += 1
            c["steps"] += 1
            if mine is None or other is None:
                wrong = ["episode length"]
            else:
                wrong = [f for f in FIELDS if differs(f, mine[f], other[f])]
            if wrong:
                n_bad_steps += 1
                bad = True
                if first is None:
                    first = (i, t, wrong, mine, other)
        bad_episodes += bad

    print(f"minigrid {minigrid.__version__}, gymnasium {gym.__version__}, numpy {np.__version__}")
    print(f"{'environment':32} {'episodes':>8} {'steps':>8} {'goal':>6} {'ended':>6} {'limit':>6} {'both':>5}")
    for name in args.envs:
        c = per_env[name]
        print(
            f"{name:32} {c['episodes']:8d} {c['steps']:8d} {c['success']:6d} "
            f"{c['terminated']:6d} {c['truncated']:6d} {c['both']:5d}"
        )
    print(
        f"steps: {len(mg_steps)} episodes, {n_steps} steps compared (resets included), "
        f"{n_bad_steps} mismatched steps in {bad_episodes} episodes"
    )
    print("events:", ", ".join(f"{k} {v}" for k, v in sorted(coverage.items())))
    if first is not None:
        i, t, wrong, mine, other = first
        name, seed, policy, small, pretty = meta[i]
        layout, actions = episodes[i]
        print(f"\nFIRST MISMATCH: {name} seed {seed} policy {policy} max_steps {layout['max_steps']}")
        print(f"  step {t}: {', '.join(wrong)}; actions so far {actions[:t]}")
        print("  layout at reset (MiniGrid's pprint_grid):")
        for row in pretty.splitlines():
            print("    " + row)
        for label, rec in (("minigrid", mine), ("rims", other)):
            if rec is None:
                print(f"  {label}: no step {t}")
                continue
            brief = {f: rec[f] for f in FIELDS if f != "image"}
            print(f"  {label}: {brief}")
            if "image" in wrong:
                for row in view_rows(rec["image"]):
                    print("    " + row)
    return n_bad_steps == 0


# ---------------------------------------------------------------- layout distributions


def features(layout):
    """Named features of a layout for the distribution comparison."""
    f = {
        "agent_x": layout["agent_pos"][0],
        "agent_y": layout["agent_pos"][1],
        "agent_dir": layout["agent_dir"],
        "max_steps": layout["max_steps"],
        "see_through_walls": layout["see_through_walls"],
        "pickup_is_toggle": layout["pickup_is_toggle"],
    }
    objs = collections.defaultdict(list)
    walls = []
    for x, column in enumerate(layout["grid"]):
        for y, code in enumerate(column):
            if code[0] == 2:
                walls.append((x, y, code[1]))
            elif code[0] != 1:
                objs[tuple(code)].append((x, y))
    f["walls"] = hashlib.sha1(repr(sorted(walls)).encode()).hexdigest()[:12]
    f["objects"] = tuple(sorted((k, len(v)) for k, v in objs.items()))
    for code, cells in objs.items():
        f[f"obj{code}_x"] = tuple(sorted(x for x, _ in cells))
        f[f"obj{code}_y"] = tuple(sorted(y for _, y in cells))
    if layout["exits"]:
        f["exit_success"] = tuple(layout["exits"]["success"])
        f["exit_failure"] = tuple(layout["exits"]["failure"])
    return f


def whole(layout):
    return json.dumps(layout, sort_keys=True)


def check_layouts(args, binary):
    n = args.layouts
    ok = True
    print(f"\nlayouts: {n} of each world from rims and from MiniGrid (seeds {args.seed}..)")
    for world, mg_name in LAYOUT_WORLDS.items():
        proc = run_rims(binary, ["--layouts", world, str(n), str(args.seed)])
        if proc.returncode != 0:
            sys.exit(f"minigrid_check: minigrid_trace --layouts failed: {proc.stderr.strip()}")
        ours = [json.loads(line) for line in proc.stdout.splitlines()]
        for layout in ours:
            layout.pop("id")
        env = gym.make(mg_name, disable_env_checker=True)
        theirs = []
        for k in range(n):
            env.reset(seed=args.seed + k)
            theirs.append(export_layout(env.unwrapped))
        env.close()
        problems = []
        support_mg = {whole(lay) for lay in theirs}
        support_rims = {whole(lay) for lay in ours}
        exact = len(support_mg) <= n // 20
        if exact and support_mg != support_rims:
            problems.append(
                f"support: {len(support_rims - support_mg)} rims layouts MiniGrid never drew, "
                f"{len(support_mg - support_rims)} the other way"
            )
        fm = [features(lay) for lay in theirs]
        fr = [features(lay) for lay in ours]
        names = sorted({k for f in fm + fr for k in f})
        worst = 0.0
        for key in names:
            cm = collections.Counter(f.get(key) for f in fm)
            cr = collections.Counter(f.get(key) for f in fr)
            for value in set(cm) | set(cr):
                pm, pr = cm[value] / n, cr[value] / n
                p = (pm + pr) / 2
                se = math.sqrt(max(p * (1 - p), 1.0 / n) * 2 / n)
                z = abs(pm - pr) / se
                worst = max(worst, z)
                if z > 5:
                    problems.append(f"{key}={value}: MiniGrid {pm:.4f}, rims {pr:.4f} ({z:.1f} se)")
        verdict = "ok" if not problems else "DIFFERENT"
        print(
            f"  {world:14} vs {mg_name:28} {len(support_mg):5d} / {len(support_rims):5d} distinct"
            f"{' (whole support)' if exact else ''}, worst feature {worst:.1f} se: {verdict}"
        )
        for p in problems[:5]:
            print(f"    {p}")
        ok &= not problems
    return ok


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Example: python3 tools/minigrid_check.py --episodes 200 --seed 0 "
        "(needs `pip install minigrid`; see the module docstring)",
    )
    parser.add_argument("--episodes", type=int, default=60, help="episodes per environment (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="first reset seed (default 0)")
    parser.add_argument(
        "--envs",
        nargs="+",
        default=STEP_ENVS,
        metavar="ID",
        help="MiniGrid ids (or 'scatter') to play; default: " + " ".join(STEP_ENVS),
    )
    parser.add_argument(
        "--layouts",
        type=int,
        default=2000,
        metavar="N",
        help="layouts per world for the distribution check, 0 to skip (default 2000)",
    )
    parser.add_argument(
        "--no-build",
        action="store_true",
        help="use target/release/examples/minigrid_trace as it is instead of building it",
    )
    args = parser.parse_args()
    if args.episodes < 0 or args.layouts < 0:
        parser.error("counts must not be negative")
    binary = trace_binary(not args.no_build)
    ok = check_steps(args, binary)
    if args.layouts:
        ok &= check_layouts(args, binary)
    print("\nRESULT:", "all match" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
