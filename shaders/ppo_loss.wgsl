// PPO family: the clipped actor-critic loss of PPO (torch_ac's PPOAlgo, docs/spec.md §8) per
// row, its statistics and its gradient with respect to the logits and the value, in one kernel
// (the softmax is needed by all three). Per row r, with a = action, p = softmax(logits),
// z = logits - max, ε = clip_eps:
//   logp    = z_a - log Σ exp(z),  entropy = -Σ p log p,  ratio = exp(logp - old_logp)
//   policy  = -min(ratio·adv, clamp(ratio, 1-ε, 1+ε)·adv)
//   value   = max((v - ret)², (old_v + clamp(v - old_v, -ε, ε) - ret)²)
//   loss    = policy - entropy_coef·entropy + value_coef·value
// and dlogits, dvalues the gradients of grad_scale · Σ_r loss_r. Ties of min and max take the
// unclipped term; a clamp's slope is 1 on its closed interval, 0 strictly outside.
// An action >= actions gives the row zero statistics and gradients and is never an index.
// One workgroup per row (threads stride over the actions, shared-memory tree reductions); the
// grid may be 2-D when there are more than 65535 rows.
//
// Storage buffers: 7 of the 8 WebGPU guarantees, which is why the batch's four per-row values
// arrive packed in one [rows, 4] buffer.

struct Params {
    rows: u32,
    actions: u32,      // logits per row; an action >= actions marks an ignored row
    grad_scale: f32,   // factor of the gradients (1 / rows for a mean loss)
    clip_eps: f32,
    value_coef: f32,
    entropy_coef: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;   // [rows, actions]
@group(0) @binding(2) var<storage, read> values: array<f32>;   // [rows]
@group(0) @binding(3) var<storage, read> taken: array<u32>;    // [rows], the actions taken
@group(0) @binding(4) var<storage, read> batch: array<f32>;    // [rows, 4] (spec::ppo_loss::field)
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;    // [6, rows]
@group(0) @binding(6) var<storage, read_write> dlogits: array<f32>;  // [rows, actions]
@group(0) @binding(7) var<storage, read_write> dvalues: array<f32>;  // [rows]

//#include workgroup_reduce

const FIELDS: u32 = 4u;

// What a row's loss does with the log-probability of its action and its value.
struct Terms {
    policy: f32,
    value_loss: f32,
    dlogp: f32,    // d(row loss) / d logp
    dvalue: f32,   // d(row loss) / d value, value_coef included
    clipped: f32,  // 1 where the clipped surrogate was taken
}

fn terms(row: u32, logp: f32, value: f32) -> Terms {
    let b = row * FIELDS;
    let old_logp = batch[b];
    let adv = batch[b + 1u];
    let ret = batch[b + 2u];
    let old_value = batch[b + 3u];
    let eps = p.clip_eps;
    var t: Terms;

    let ratio = exp(logp - old_logp);
    let surr1 = ratio * adv;
    let surr2 = clamp(ratio, 1.0 - eps, 1.0 + eps) * adv;
    let unclipped = surr1 <= surr2;
    t.policy = -select(surr2, surr1, unclipped);
    // The clipped term wins only strictly, so only where clamp changed the ratio: outside the
    // closed interval, where its slope (and so the policy gradient) is 0.
    t.dlogp = select(0.0, -adv * ratio, unclipped);
    t.clipped = select(1.0, 0.0, unclipped);

    let delta = value - old_value;
    let e1 = value - ret;
    let e2 = (old_value + clamp(delta, -eps, eps)) - ret;
    let l1 = e1 * e1;
    let l2 = e2 * e2;
    let first = l1 >= l2;
    // old_v + (v - old_v) need not round back to v, so l2 can win inside the interval too.
    let slope = select(0.0, 1.0, -eps <= delta && delta <= eps);
    t.value_loss = select(l2, l1, first);
    t.dvalue = p.value_coef * select(2.0 * e2 * slope, 2.0 * e1, first);
    return t;
}

@compute @workgroup_size(WG)
fn ppo_loss(@builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    // Uniform across the workgroup, so returning before the barriers is allowed.
    if (row >= p.rows) {
        return;
    }
    let start = row * p.actions;
    let end = start + p.actions;

    // Threads that see no element start from the row's first one; max is idempotent.
    var m = logits[start];
    for (var i = start + lid; i < end; i = i + WG) {
        m = max(m, logits[i]);
    }
    m = workgroup_max(lid, m);

    // exp(z) <= 1 cannot overflow; it waits in dlogits until the sum is known, each thread
    // later rewriting exactly the elements it wrote (no barrier needed between the passes).
    var acc = 0.0;
    var acc_ez = 0.0;
    for (var i = start + lid; i < end; i = i + WG) {
        let z = logits[i] - m;
        let e = exp(z);
        dlogits[i] = e;
        acc = acc + e;
        acc_ez = acc_ez + e * z;
    }
    // The max element contributes exp(0) = 1, so sum >= 1: the division and log are safe.
    let sum = workgroup_sum(lid, acc);
    let sum_ez = workgroup_sum(lid, acc_ez);
    let log_sum = log(sum);
    let inv = 1.0 / sum;
    // mean_z = Σ p·z; entropy = -Σ p (z - log_sum) = log_sum - mean_z, and
    // log p_i + entropy = z_i - mean_z (no log_sum to cancel).
    let mean_z = sum_ez * inv;
    let entropy = log_sum - mean_z;

    // The action is read only after the barriers: control flow that depends on a storage
    // value must not contain them. An invalid one reads the first logit instead and its row's
    // results are replaced by zeros.
    let a = taken[row];
    let valid = a < p.actions;
    let logp = (logits[start + select(0u, a, valid)] - m) - log_sum;
    let t = terms(row, logp, values[row]);
    let ec = p.entropy_coef;
    for (var i = start + lid; i < end; i = i + WG) {
        let pi = dlogits[i] * inv;
        let onehot = select(0.0, 1.0, i - start == a);
        // d logp/dz_i = onehot - p_i; d entropy/dz_i = -p_i (log p_i + entropy).
        let g = t.dlogp * (onehot - pi) + ec * (pi * ((logits[i] - m) - mean_z));
        dlogits[i] = select(0.0, g * p.grad_scale, valid);
    }
    if (lid == 0u) {
        let loss = (t.policy - ec * entropy) + p.value_coef * t.value_loss;
        // [6, rows]: one row per statistic, so each mean is one row sum (spec::ppo_loss::stat).
        let n = p.rows;
        stats[row] = select(0.0, loss, valid);
        stats[n + row] = select(0.0, t.policy, valid);
        stats[2u * n + row] = select(0.0, t.value_loss, valid);
        stats[3u * n + row] = select(0.0, entropy, valid);
        stats[4u * n + row] = select(0.0, batch[row * FIELDS] - logp, valid);
        stats[5u * n + row] = select(0.0, t.clipped, valid);
        dvalues[row] = select(0.0, t.dvalue * p.grad_scale, valid);
    }
}
