//! GPU ops against the f64 reference, and the error paths. One binary so the context and its
//! compiled pipelines are shared.

#[macro_use]
mod common;
mod adding;
mod binary_cross_entropy;
mod cell;
mod communication;
mod conv2d;
mod cross_entropy;
mod devices;
mod dist;
mod dropout;
mod elementwise;
mod embedding;
mod engine;
mod frames;
mod grad;
mod input_attention;
mod layer_norm;
mod matmul;
mod merge;
mod model;
mod optim;
mod params;
mod ppo;
mod ppo_loss;
mod pytorch_golden;
mod recurrent;
mod reduce;
mod rims;
mod runner;
mod squared_error;
mod train;
mod trainer;
mod twins;
mod upsample;
