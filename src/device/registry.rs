//! Kernel registry: every WGSL file is compiled once per (shader, entry point, specialisation),
//! its bind-group layout is derived from the shader itself (naga reflection), and bind groups
//! are cached by the buffers they bind.
//!
//! Conventions every shader follows:
//! - group 0 only; a `var<uniform>` holding the op's parameters (bound with a dynamic offset into
//!   the recorder's uniform arena) and storage buffers, in binding order;
//! - specialisation values replace the initialiser of a `const NAME: u32 = ...;` declaration, so
//!   the file on disk is valid WGSL with its default values (tests/shaders.rs validates it).

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::kernels::{self, CpuKernel, SHADERS, resolve_includes};

/// A specialisation: values for `const NAME: u32` declarations of a shader.
pub type Spec<'a> = &'a [(&'a str, u32)];

/// How a kernel runs on its device.
pub(crate) enum Exec {
    /// A wgpu pipeline and its bind-group layout.
    Gpu {
        pipeline: wgpu::ComputePipeline,
        layout: wgpu::BindGroupLayout,
    },
    /// The entry point's Rust twin (`kernels::NAME`).
    Cpu(CpuKernel),
}

/// One compiled entry point with what is needed to bind it.
pub struct Kernel {
    pub(crate) id: u64,
    pub(crate) label: String,
    pub(crate) exec: Exec,
    /// Binding numbers of the storage buffers, in the order callers pass tensors.
    pub(crate) storage: Vec<u32>,
    /// Whether each storage binding is `read_write`, in the same order.
    pub(crate) writable: Vec<bool>,
    /// The uniform binding and the size of its struct, if the entry point uses one.
    pub(crate) uniform: Option<(u32, u64)>,
}

impl Kernel {
    /// "shader:entry[spec]", for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// How many storage buffers a dispatch of this kernel binds.
    pub fn storage_count(&self) -> usize {
        self.storage.len()
    }

    /// Checks a dispatch's parameter bytes and binding count against the entry point (the
    /// same check on both devices).
    pub(crate) fn check_call(&self, params: usize, bindings: usize) -> Result<()> {
        if bindings != self.storage.len() {
            return Err(Error::invalid(
                "dispatch",
                format!(
                    "{} binds {} storage buffers, got {bindings}",
                    self.label,
                    self.storage.len()
                ),
            ));
        }
        if let Some((_, size)) = self.uniform
            && params as u64 > size
        {
            return Err(Error::invalid(
                "dispatch",
                format!(
                    "{} takes {size} bytes of parameters, got {params}",
                    self.label
                ),
            ));
        }
        Ok(())
    }
}

/// (kernel, uniform arena, [(buffer, offset, size)]).
type BindKey = (u64, u64, Vec<(u64, u64, u64)>);

/// One compiled specialisation of an entry point: its constant values and the kernel.
type Compiled = (Vec<(String, u32)>, Arc<Kernel>);

/// Compiled kernels and cached bind groups.
pub struct KernelRegistry {
    /// shader → entry → the compiled specialisations with their values. Looked up by `&str`
    /// and compared in place, so a dispatch of a compiled kernel allocates nothing.
    kernels: HashMap<String, HashMap<String, Vec<Compiled>>>,
    /// Compiled pipelines, all specialisations counted.
    count: usize,
    bind_groups: HashMap<BindKey, wgpu::BindGroup>,
    next_id: u64,
}

/// Bind groups kept at most; past this the cache starts again (a steady training loop uses far fewer).
const MAX_BIND_GROUPS: usize = 8192;

/// Returns the source of `shader` with the specialisation applied.
pub fn specialise(shader: &str, spec: Spec<'_>) -> Result<String> {
    let source = SHADERS
        .iter()
        .find(|(n, _)| *n == shader)
        .map(|(_, s)| *s)
        .ok_or_else(|| Error::Shader {
            shader: shader.into(),
            entry: String::new(),
            message: "no such shader".into(),
        })?;
    let mut text = resolve_includes(source).map_err(|message| Error::Shader {
        shader: shader.into(),
        entry: String::new(),
        message,
    })?;
    for (name, value) in spec {
        let pattern = format!("const {name}: u32 = ");
        let start = text.find(&pattern).ok_or_else(|| Error::Shader {
            shader: shader.into(),
            entry: String::new(),
            message: format!(
                "specialisation constant '{name}' is not declared as `const {name}: u32`"
            ),
        })? + pattern.len();
        let end = start
            + text[start..].find(';').ok_or_else(|| Error::Shader {
                shader: shader.into(),
                entry: String::new(),
                message: format!("declaration of '{name}' has no ';'"),
            })?;
        text.replace_range(start..end, &format!("{value}u"));
    }
    Ok(text)
}

/// Parses and validates WGSL with naga; the same check tests/shaders.rs runs on every file.
pub fn validate_wgsl(
    source: &str,
) -> std::result::Result<(naga::Module, naga::valid::ModuleInfo), String> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .map_err(|e| e.emit_to_string(source))?;
    Ok((module, info))
}

/// Binding layout of one entry point, read from the shader.
struct Reflection {
    entries: Vec<wgpu::BindGroupLayoutEntry>,
    storage: Vec<u32>,
    writable: Vec<bool>,
    uniform: Option<(u32, u64)>,
}

fn reflect(
    shader: &str,
    entry: &str,
    module: &naga::Module,
    info: &naga::valid::ModuleInfo,
) -> Result<Reflection> {
    let err = |message: String| Error::Shader {
        shader: shader.into(),
        entry: entry.into(),
        message,
    };
    let ep_index = module
        .entry_points
        .iter()
        .position(|ep| ep.name == entry && ep.stage == naga::ShaderStage::Compute)
        .ok_or_else(|| err("no compute entry point of that name".into()))?;
    let uses = info.get_entry_point(ep_index);
    let mut bound: Vec<(u32, wgpu::BindingType)> = Vec::new();
    let mut uniform = None;
    for (handle, var) in module.global_variables.iter() {
        let Some(binding) = &var.binding else {
            continue;
        };
        if uses[handle].is_empty() {
            continue;
        }
        if binding.group != 0 {
            return Err(err(format!(
                "binding {} uses group {}; only group 0 is supported",
                binding.binding, binding.group
            )));
        }
        let ty = match var.space {
            naga::AddressSpace::Uniform => {
                let size = module.types[var.ty].inner.size(module.to_ctx()) as u64;
                let size = size.div_ceil(16) * 16;
                uniform = Some((binding.binding, size));
                wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: true,
                    min_binding_size: std::num::NonZeroU64::new(size),
                }
            }
            naga::AddressSpace::Storage { access } => wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage {
                    read_only: !access.contains(naga::StorageAccess::STORE),
                },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            other => return Err(err(format!("unsupported address space {other:?}"))),
        };
        bound.push((binding.binding, ty));
    }
    bound.sort_by_key(|(b, _)| *b);
    let (storage, writable) = bound
        .iter()
        .filter_map(|(b, t)| match t {
            wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                ..
            } => Some((*b, !read_only)),
            _ => None,
        })
        .unzip();
    let entries = bound
        .into_iter()
        .map(|(binding, ty)| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty,
            count: None,
        })
        .collect();
    Ok(Reflection {
        entries,
        storage,
        writable,
        uniform,
    })
}

impl KernelRegistry {
    /// An empty registry: no kernels compiled, no bind groups cached.
    pub fn new() -> Self {
        KernelRegistry {
            kernels: HashMap::new(),
            count: 0,
            bind_groups: HashMap::new(),
            next_id: 1,
        }
    }

    /// Number of compiled pipelines.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True before the first kernel is compiled.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The pipeline for (shader, entry, spec), compiled on first use.
    pub fn get(
        &mut self,
        ctx: &crate::Context,
        shader: &str,
        entry: &str,
        spec: Spec<'_>,
    ) -> Result<Arc<Kernel>> {
        let same = |have: &[(String, u32)]| {
            have.len() == spec.len() && have.iter().zip(spec).all(|(a, b)| a.0 == b.0 && a.1 == b.1)
        };
        let compiled = self.kernels.get(shader).and_then(|e| e.get(entry));
        if let Some((_, k)) = compiled.and_then(|v| v.iter().find(|(have, _)| same(have))) {
            return Ok(k.clone());
        }
        let mut key = format!("{shader}:{entry}");
        for (n, v) in spec {
            key.push_str(&format!(" {n}={v}"));
        }
        let source = specialise(shader, spec)?;
        let (module, info) = validate_wgsl(&source).map_err(|message| Error::Shader {
            shader: shader.into(),
            entry: entry.into(),
            message,
        })?;
        let refl = reflect(shader, entry, &module, &info)?;
        let exec = match ctx.gpu_device() {
            Some(device) => {
                let (layout, pipeline) = ctx.scoped(&format!("compiling {key}"), || {
                    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(&key),
                        source: wgpu::ShaderSource::Wgsl(source.as_str().into()),
                    });
                    let layout =
                        device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                            label: Some(&key),
                            entries: &refl.entries,
                        });
                    let pipeline_layout =
                        device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                            label: Some(&key),
                            bind_group_layouts: &[Some(&layout)],
                            immediate_size: 0,
                        });
                    let pipeline =
                        device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                            label: Some(&key),
                            layout: Some(&pipeline_layout),
                            module: &module,
                            entry_point: Some(entry),
                            compilation_options: wgpu::PipelineCompilationOptions::default(),
                            cache: None,
                        });
                    (layout, pipeline)
                })?;
                Exec::Gpu { pipeline, layout }
            }
            None => Exec::Cpu(
                kernels::cpu_twin(shader, entry).ok_or_else(|| Error::Shader {
                    shader: shader.into(),
                    entry: entry.into(),
                    message: "this entry point has no CPU twin in kernels/".into(),
                })?,
            ),
        };
        let kernel = Arc::new(Kernel {
            id: self.next_id,
            label: key,
            exec,
            storage: refl.storage,
            writable: refl.writable,
            uniform: refl.uniform,
        });
        self.next_id += 1;
        let spec = spec.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        self.kernels
            .entry(shader.to_string())
            .or_default()
            .entry(entry.to_string())
            .or_default()
            .push((spec, kernel.clone()));
        self.count += 1;
        Ok(kernel)
    }

    /// The bind group for `kernel` over these buffers (and the uniform arena), cached.
    pub(crate) fn bind_group(
        &mut self,
        device: &wgpu::Device,
        kernel: &Kernel,
        arena: Option<(u64, &wgpu::Buffer)>,
        buffers: &[(u64, &wgpu::Buffer, u64, u64)],
    ) -> wgpu::BindGroup {
        let key: BindKey = (
            kernel.id,
            arena.map(|a| a.0).unwrap_or(0),
            buffers.iter().map(|b| (b.0, b.2, b.3)).collect(),
        );
        if let Some(bg) = self.bind_groups.get(&key) {
            return bg.clone();
        }
        if self.bind_groups.len() >= MAX_BIND_GROUPS {
            self.bind_groups.clear();
        }
        let mut entries = Vec::with_capacity(buffers.len() + 1);
        if let (Some((binding, size)), Some((_, arena))) = (kernel.uniform, arena) {
            entries.push(wgpu::BindGroupEntry {
                binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: arena,
                    offset: 0,
                    size: std::num::NonZeroU64::new(size),
                }),
            });
        }
        for (binding, (_, buffer, offset, size)) in kernel.storage.iter().zip(buffers) {
            entries.push(wgpu::BindGroupEntry {
                binding: *binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset: *offset,
                    size: std::num::NonZeroU64::new(*size),
                }),
            });
        }
        let Exec::Gpu { layout, .. } = &kernel.exec else {
            unreachable!("bind groups are made for GPU kernels only")
        };
        let bg = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&kernel.label),
            layout,
            entries: &entries,
        });
        self.bind_groups.insert(key, bg.clone());
        bg
    }

    /// Drops cached bind groups that mention the uniform arena `arena_id` (it was replaced).
    pub(crate) fn forget_arena(&mut self, arena_id: u64) {
        self.bind_groups.retain(|k, _| k.1 != arena_id);
    }
}

impl Default for KernelRegistry {
    fn default() -> Self {
        Self::new()
    }
}
