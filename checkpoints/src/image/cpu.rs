//! Host CPU features an image depends on, and the check that a host can
//! run it.
//!
//! Guest code runs natively in the stub and executes `cpuid` itself, so it
//! may use any feature the checkpointing host advertised: an image requires
//! every CPU flag of the host that wrote it (as gVisor's `cpuid.FeatureSet`
//! compatibility check does). The saved register files carry the XSAVE
//! area, so the restoring host must enable every XSAVE state component the
//! image's area has, and its area must be at least as large.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// CPU features recorded in an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuFeatures {
    /// CPU vendor string (`GenuineIntel`, `AuthenticAMD`); informative.
    pub vendor: String,
    /// `/proc/cpuinfo` flags, sorted and deduplicated.
    pub flags: Vec<String>,
    /// XSAVE state components enabled for user space (XCR0 bits):
    /// components the processor supports (CPUID.(EAX=0DH,ECX=0):EDX:EAX)
    /// whose save area lies within the enabled area size. 0 without XSAVE.
    pub xsave_features: u64,
    /// Size of the XSAVE area for the enabled components
    /// (CPUID.(EAX=0DH,ECX=0):EBX). 0 without XSAVE.
    pub xsave_size: u32,
}

/// The host's features could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CpuProbeError {
    /// `/proc/cpuinfo` could not be read.
    #[error("cannot read /proc/cpuinfo")]
    CpuInfo {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `/proc/cpuinfo` has no `flags` line.
    #[error("/proc/cpuinfo has no flags line")]
    NoFlags,
}

/// This host cannot run the image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuCompatError {
    /// CPU flags the image needs are absent.
    #[error("this host's CPU lacks features the image was checkpointed with: {}", .missing.join(" "))]
    MissingFlags {
        /// The absent flags (as named in `/proc/cpuinfo`).
        missing: Vec<String>,
    },
    /// XSAVE state components the image's register files hold are not
    /// enabled on this host.
    #[error("this host does not enable XSAVE components {missing:#x} that the image's register state uses")]
    MissingXsaveFeatures {
        /// XCR0 bits the image has and the host lacks.
        missing: u64,
    },
    /// The image's XSAVE area does not fit the host's.
    #[error("the image's XSAVE area is {image} bytes, this host's is {host}")]
    XsaveAreaTooLarge {
        /// Area size in the image.
        image: u32,
        /// Area size on this host.
        host: u32,
    },
}

impl CpuFeatures {
    /// Reads this host's features (`/proc/cpuinfo` and CPUID leaf 0xD).
    pub fn host() -> Result<CpuFeatures, CpuProbeError> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo")
            .map_err(|source| CpuProbeError::CpuInfo { source })?;
        let mut features = CpuFeatures::from_cpuinfo(&cpuinfo).ok_or(CpuProbeError::NoFlags)?;
        if features.flags.iter().any(|f| f == "xsave") {
            let (mask, size) = xsave_from_cpuid();
            features.xsave_features = mask;
            features.xsave_size = size;
        }
        Ok(features)
    }

    /// Parses vendor and flags of the first processor of a
    /// `/proc/cpuinfo` text (XSAVE fields are left 0).
    pub fn from_cpuinfo(text: &str) -> Option<CpuFeatures> {
        let field = |name: &str| {
            text.lines()
                .find(|l| l.split(':').next().map(str::trim) == Some(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        };
        let flags: BTreeSet<String> = field("flags")?
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        Some(CpuFeatures {
            vendor: field("vendor_id").unwrap_or_default(),
            flags: flags.into_iter().collect(),
            xsave_features: 0,
            xsave_size: 0,
        })
    }

    /// Checks that a host with features `host` can run an image that
    /// requires `self`; names everything missing in the first failing
    /// category.
    pub fn check_runnable_on(&self, host: &CpuFeatures) -> Result<(), CpuCompatError> {
        let have: BTreeSet<&str> = host.flags.iter().map(String::as_str).collect();
        let missing: Vec<String> = self
            .flags
            .iter()
            .filter(|f| !have.contains(f.as_str()))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(CpuCompatError::MissingFlags { missing });
        }
        let missing = self.xsave_features & !host.xsave_features;
        if missing != 0 {
            return Err(CpuCompatError::MissingXsaveFeatures { missing });
        }
        if self.xsave_size > host.xsave_size {
            return Err(CpuCompatError::XsaveAreaTooLarge {
                image: self.xsave_size,
                host: host.xsave_size,
            });
        }
        Ok(())
    }
}

/// XCR0 component mask and enabled area size from CPUID leaf 0xD.
/// Precondition: the CPU has XSAVE (leaf 0xD exists).
#[cfg(target_arch = "x86_64")]
fn xsave_from_cpuid() -> (u64, u32) {
    use std::arch::x86_64::__cpuid_count;
    // Intel SDM vol. 2A, CPUID leaf 0DH: sub-leaf 0 gives the supported
    // XCR0 bits (EDX:EAX) and the area size for the enabled ones (EBX);
    // sub-leaf i >= 2 gives component i's size (EAX) and offset (EBX).
    let leaf = __cpuid_count(0xd, 0);
    let supported = (u64::from(leaf.edx) << 32) | u64::from(leaf.eax);
    let enabled_size = leaf.ebx;
    let mut mask = supported & 0b11; // x87 and SSE live in the legacy area.
    for bit in 2..63u32 {
        if supported & (1 << bit) == 0 {
            continue;
        }
        let sub = __cpuid_count(0xd, bit);
        if sub.ebx.saturating_add(sub.eax) <= enabled_size {
            mask |= 1 << bit;
        }
    }
    (mask, enabled_size)
}

#[cfg(not(target_arch = "x86_64"))]
fn xsave_from_cpuid() -> (u64, u32) {
    (0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(flags: &[&str], xsave_features: u64, xsave_size: u32) -> CpuFeatures {
        CpuFeatures {
            vendor: "GenuineIntel".into(),
            flags: flags.iter().map(|s| s.to_string()).collect(),
            xsave_features,
            xsave_size,
        }
    }

    #[test]
    fn parses_first_processor_of_cpuinfo() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: sse2 avx xsave avx\n\nprocessor\t: 1\nflags\t: sse2\n";
        let f = CpuFeatures::from_cpuinfo(text).unwrap();
        assert_eq!(f.vendor, "AuthenticAMD");
        assert_eq!(f.flags, vec!["avx", "sse2", "xsave"]);
    }

    #[test]
    fn host_probe_reports_flags_and_xsave_area() {
        let host = CpuFeatures::host().unwrap();
        assert!(host.flags.iter().any(|f| f == "sse2"));
        if host.flags.iter().any(|f| f == "xsave") {
            // Legacy area (512) + XSAVE header (64) at least; x87|SSE set.
            assert!(host.xsave_size >= 576);
            assert_eq!(host.xsave_features & 0b11, 0b11);
        }
    }

    #[test]
    fn host_runs_its_own_images() {
        let host = CpuFeatures::host().unwrap();
        assert_eq!(host.check_runnable_on(&host), Ok(()));
    }

    #[test]
    fn missing_flags_are_named() {
        let image = features(&["avx2", "avx512f", "sse2"], 0b111, 832);
        let host = features(&["avx2", "sse2"], 0b111, 832);
        assert_eq!(
            image.check_runnable_on(&host),
            Err(CpuCompatError::MissingFlags {
                missing: vec!["avx512f".into()]
            })
        );
    }

    #[test]
    fn missing_xsave_components_are_named() {
        let image = features(&["sse2"], 0b1110_0111, 2696);
        let host = features(&["sse2"], 0b111, 2696);
        assert_eq!(
            image.check_runnable_on(&host),
            Err(CpuCompatError::MissingXsaveFeatures {
                missing: 0b1110_0000
            })
        );
    }

    #[test]
    fn larger_xsave_area_is_refused() {
        let image = features(&["sse2"], 0b111, 2696);
        let host = features(&["sse2"], 0b111, 832);
        assert_eq!(
            image.check_runnable_on(&host),
            Err(CpuCompatError::XsaveAreaTooLarge {
                image: 2696,
                host: 832
            })
        );
    }
}
