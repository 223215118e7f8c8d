//! Which wgpu adapter a [`DeviceRequest`](super::adapter::DeviceRequest) opens, out of those
//! found: by `RIMS_ADAPTER` (a name's part, or `#N` for `rims info`'s adapter [N]), else the
//! best one; and on a machine that runs several ranks of one job, a different card for each
//! rank when the machine has several alike.

use super::adapter::{AdapterSummary, backend_rank, device_rank};
use crate::error::{Error, Result};

/// Index into `summaries` of the adapter to open.
///
/// - `wanted` is `RIMS_ADAPTER`: `#N` takes adapter N of the list (as `rims info` numbers it);
///   anything else is a case-insensitive part of the adapter's name, and the best match wins.
/// - Without `#N`, the best is a hardware GPU before a software one, discrete before integrated,
///   Vulkan/Metal before DX12 before GL, then the order found.
/// - `node_rank`: this process's rank among the job's processes on this machine (MPI's local
///   rank). The best adapters that are alike (same device type and backend, e.g. four H100s
///   under Vulkan) are shared out round robin: local rank r takes the (r mod count)-th. `#N`
///   is never shared out: it names one card for this process.
pub(super) fn choose_adapter(
    summaries: &[AdapterSummary],
    wanted: Option<&str>,
    node_rank: Option<usize>,
) -> Result<usize> {
    let wanted = wanted.map(str::trim).filter(|w| !w.is_empty());
    if let Some(index) = wanted.and_then(|w| w.strip_prefix('#')) {
        return by_index(summaries, index);
    }
    let wanted = wanted.map(str::to_ascii_lowercase);
    let mut candidates: Vec<usize> = (0..summaries.len())
        .filter(|&i| summaries[i].compute)
        .filter(|&i| match &wanted {
            Some(w) => summaries[i].name.to_ascii_lowercase().contains(w.as_str()),
            None => true,
        })
        .collect();
    if candidates.is_empty() {
        return Err(Error::NoAdapter(format!(
            "none with compute shaders matches {}; found: {}",
            wanted
                .map(|w| format!("RIMS_ADAPTER='{w}'"))
                .unwrap_or_else(|| "the request".into()),
            names(summaries)
        )));
    }
    let tier = |i: usize| {
        (
            device_rank(summaries[i].device_type),
            backend_rank(summaries[i].backend),
        )
    };
    candidates.sort_by_key(|&i| (tier(i), i));
    let best = tier(candidates[0]);
    let alike: Vec<usize> = candidates
        .into_iter()
        .take_while(|&i| tier(i) == best)
        .collect();
    Ok(alike[node_rank.unwrap_or(0) % alike.len()])
}

/// `RIMS_ADAPTER=#N`: adapter N of the list, which must exist and run compute shaders.
fn by_index(summaries: &[AdapterSummary], index: &str) -> Result<usize> {
    let bad = |why: String| {
        Error::NoAdapter(format!(
            "RIMS_ADAPTER='#{index}': {why}; found: {}",
            names(summaries)
        ))
    };
    let n: usize = index
        .trim()
        .parse()
        .map_err(|_| bad("expected # and an adapter's number from `rims info`".into()))?;
    match summaries.get(n) {
        None => Err(bad(format!(
            "there is no adapter {n} ({} found, numbered from 0)",
            summaries.len()
        ))),
        Some(s) if !s.compute => Err(bad(format!("adapter {n} cannot run compute shaders"))),
        Some(_) => Ok(n),
    }
}

/// "[0] name (Vulkan), [1] ...", for errors.
fn names(summaries: &[AdapterSummary]) -> String {
    if summaries.is_empty() {
        return "none".into();
    }
    summaries
        .iter()
        .enumerate()
        .map(|(i, s)| format!("[{i}] {} ({:?})", s.name, s.backend))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgpu::{Backend, DeviceType};

    fn adapter(name: &str, backend: Backend, device_type: DeviceType) -> AdapterSummary {
        AdapterSummary {
            name: name.into(),
            backend,
            device_type,
            driver: String::new(),
            driver_info: String::new(),
            compute: true,
            features: wgpu::Features::empty(),
        }
    }

    /// A node of four identical GPUs as wgpu lists them: once under GL, once under Vulkan,
    /// and llvmpipe beside them.
    fn four_gpus() -> Vec<AdapterSummary> {
        let mut list = Vec::new();
        for _ in 0..4 {
            list.push(adapter("NVIDIA H100", Backend::Gl, DeviceType::DiscreteGpu));
        }
        list.push(adapter("llvmpipe", Backend::Vulkan, DeviceType::Cpu));
        for _ in 0..4 {
            list.push(adapter(
                "NVIDIA H100",
                Backend::Vulkan,
                DeviceType::DiscreteGpu,
            ));
        }
        list
    }

    #[test]
    fn the_best_adapter_is_hardware_on_the_native_backend() {
        let list = four_gpus();
        assert_eq!(choose_adapter(&list, None, None).unwrap(), 5);
        assert_eq!(choose_adapter(&list, Some("h100"), None).unwrap(), 5);
        assert_eq!(choose_adapter(&list, Some("LLVMpipe"), None).unwrap(), 4);
    }

    #[test]
    fn ranks_on_one_node_share_out_its_alike_cards() {
        let list = four_gpus();
        let chosen: Vec<usize> = (0..6)
            .map(|r| choose_adapter(&list, None, Some(r)).unwrap())
            .collect();
        assert_eq!(chosen, [5, 6, 7, 8, 5, 6]);
        // A name narrows the cards first; a lone match serves every rank.
        let chosen: Vec<usize> = (0..3)
            .map(|r| choose_adapter(&list, Some("llvm"), Some(r)).unwrap())
            .collect();
        assert_eq!(chosen, [4, 4, 4]);
        // Cards that differ are not shared out: the best serves every rank.
        let mixed = vec![
            adapter("RTX 4090", Backend::Vulkan, DeviceType::DiscreteGpu),
            adapter("Intel UHD", Backend::Vulkan, DeviceType::IntegratedGpu),
        ];
        assert_eq!(choose_adapter(&mixed, None, Some(1)).unwrap(), 0);
    }

    #[test]
    fn an_index_names_one_adapter_of_the_list() {
        let list = four_gpus();
        assert_eq!(choose_adapter(&list, Some("#2"), None).unwrap(), 2);
        assert_eq!(choose_adapter(&list, Some(" #7 "), Some(3)).unwrap(), 7);
        let e = choose_adapter(&list, Some("#9"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no adapter 9 (9 found"), "{e}");
        assert!(e.contains("[8] NVIDIA H100 (Vulkan)"), "{e}");
        let e = choose_adapter(&list, Some("#one"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("rims info"), "{e}");
        let mut no_compute = list.clone();
        no_compute[2].compute = false;
        let e = choose_adapter(&no_compute, Some("#2"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot run compute shaders"), "{e}");
    }

    #[test]
    fn a_name_that_matches_nothing_lists_what_there_is() {
        let e = choose_adapter(&four_gpus(), Some("A100"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("RIMS_ADAPTER='a100'"), "{e}");
        assert!(e.contains("[4] llvmpipe (Vulkan)"), "{e}");
        let e = choose_adapter(&[], None, None).unwrap_err().to_string();
        assert!(e.contains("found: none"), "{e}");
    }
}
