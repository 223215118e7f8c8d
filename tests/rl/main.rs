//! The RL environments (src/rl): MiniGrid's objects and ids, the action rules, the egocentric
//! occluded view, the worlds' layouts and names, the batch's seeds and resets, and a scripted
//! solver that finishes every generated layout.
//!
//! `support` builds scenes from text pictures; the rest is one module per part.

mod support;

mod actions;
mod batch;
mod grid;
mod solver;
mod view;
mod world;
