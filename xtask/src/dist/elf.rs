//! How an ELF executable is linked, read from its program headers: the
//! one fact `cargo xtask dist` must prove is that the binary needs no
//! dynamic loader and no shared library, so it runs in any image, `FROM
//! scratch` included.
//!
//! A static-pie executable (what Rust builds for musl by default) still has
//! a `PT_DYNAMIC` segment for relocating itself, so "has a dynamic segment"
//! is not the test: "has an interpreter, or names a library it needs" is.

use anyhow::{Context, Result, bail, ensure};

/// `PT_DYNAMIC`: the segment holding the dynamic section.
const PT_DYNAMIC: u32 = 2;
/// `PT_INTERP`: the segment naming the program interpreter (the loader).
const PT_INTERP: u32 = 3;
/// `DT_NULL`: the entry ending the dynamic section.
const DT_NULL: u64 = 0;
/// `DT_NEEDED`: a dynamic entry naming a shared library to load.
const DT_NEEDED: u64 = 1;

/// What an executable needs from the system to start.
#[derive(Debug, PartialEq, Eq)]
pub struct Linkage {
    /// The program interpreter (`/lib64/ld-linux-x86-64.so.2`), when there is one.
    pub interpreter: Option<String>,
    /// How many shared libraries the dynamic section names (`DT_NEEDED`).
    pub needed_libraries: usize,
}

impl Linkage {
    /// True when the executable starts with nothing from the system: no
    /// loader, no shared library.
    pub fn is_static(&self) -> bool {
        self.interpreter.is_none() && self.needed_libraries == 0
    }
}

/// Reads the linkage of a 64-bit little-endian ELF file from its bytes.
///
/// # Errors
/// When the bytes are not such an ELF file, or a header points outside them.
pub fn linkage(bytes: &[u8]) -> Result<Linkage> {
    ensure!(
        bytes.get(..4) == Some(b"\x7fELF".as_slice()),
        "not an ELF file"
    );
    ensure!(
        bytes.get(4) == Some(&2) && bytes.get(5) == Some(&1),
        "not a 64-bit little-endian ELF file"
    );
    let header_table = read_u64(bytes, 0x20)?;
    let header_size = u64::from(read_u16(bytes, 0x36)?);
    let header_count = u64::from(read_u16(bytes, 0x38)?);
    let mut linkage = Linkage {
        interpreter: None,
        needed_libraries: 0,
    };
    for index in 0..header_count {
        let header = to_offset(header_table + index * header_size)?;
        let segment_type = read_u32(bytes, header)?;
        let segment_start = to_offset(read_u64(bytes, header + 8)?)?;
        let segment_length = to_offset(read_u64(bytes, header + 32)?)?;
        let segment = bytes
            .get(segment_start..segment_start.saturating_add(segment_length))
            .context("a program header points past the end of the file")?;
        match segment_type {
            PT_INTERP => {
                let name = segment.split(|byte| *byte == 0).next().unwrap_or_default();
                linkage.interpreter = Some(String::from_utf8_lossy(name).into_owned());
            }
            PT_DYNAMIC => linkage.needed_libraries += count_needed(segment)?,
            _ => {}
        }
    }
    Ok(linkage)
}

/// Counts the `DT_NEEDED` entries of a dynamic section (16-byte entries:
/// tag, then value), up to its `DT_NULL`.
fn count_needed(section: &[u8]) -> Result<usize> {
    let mut needed = 0;
    for entry in section.chunks_exact(16) {
        match read_u64(entry, 0)? {
            DT_NULL => break,
            DT_NEEDED => needed += 1,
            _ => {}
        }
    }
    Ok(needed)
}

fn to_offset(value: u64) -> Result<usize> {
    usize::try_from(value).context("an ELF offset does not fit in memory")
}

fn read_array<const N: usize>(bytes: &[u8], offset: usize) -> Result<[u8; N]> {
    match bytes
        .get(offset..offset.saturating_add(N))
        .map(<[u8; N]>::try_from)
    {
        Some(Ok(array)) => Ok(array),
        _ => bail!("the ELF file ends inside a header (offset {offset})"),
    }
}

fn read_u16(bytes: &[u8], offset: usize) -> Result<u16> {
    read_array(bytes, offset).map(u16::from_le_bytes)
}

fn read_u32(bytes: &[u8], offset: usize) -> Result<u32> {
    read_array(bytes, offset).map(u32::from_le_bytes)
}

fn read_u64(bytes: &[u8], offset: usize) -> Result<u64> {
    read_array(bytes, offset).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF header with one program header of `segment_type` whose
    /// contents are `segment`, placed right after the headers.
    fn elf_with_segment(segment_type: u32, segment: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0u8; 64 + 56];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2;
        bytes[5] = 1;
        bytes[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        bytes[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        bytes[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        bytes[64..68].copy_from_slice(&segment_type.to_le_bytes());
        bytes[72..80].copy_from_slice(&120u64.to_le_bytes());
        bytes[96..104].copy_from_slice(&(segment.len() as u64).to_le_bytes());
        bytes.extend_from_slice(segment);
        bytes
    }

    fn dynamic_entries(tags: &[u64]) -> Vec<u8> {
        tags.iter()
            .flat_map(|tag| [tag.to_le_bytes(), 0u64.to_le_bytes()].concat())
            .collect()
    }

    #[test]
    fn an_interpreter_makes_an_executable_dynamic() {
        let bytes = elf_with_segment(PT_INTERP, b"/lib/ld-musl-x86_64.so.1\0");
        let linkage = linkage(&bytes).expect("a valid ELF file");
        assert_eq!(
            linkage.interpreter.as_deref(),
            Some("/lib/ld-musl-x86_64.so.1")
        );
        assert!(!linkage.is_static());
    }

    #[test]
    fn a_static_pie_dynamic_section_without_needed_libraries_is_static() {
        // Tags 0x6ffffffb (DT_FLAGS_1) and 7 (DT_RELA) as a static-pie has them.
        let bytes = elf_with_segment(PT_DYNAMIC, &dynamic_entries(&[0x6fff_fffb, 7, DT_NULL]));
        let linkage = linkage(&bytes).expect("a valid ELF file");
        assert_eq!(
            linkage,
            Linkage {
                interpreter: None,
                needed_libraries: 0
            }
        );
        assert!(linkage.is_static());
    }

    #[test]
    fn needed_libraries_are_counted_up_to_the_end_of_the_dynamic_section() {
        let entries = dynamic_entries(&[DT_NEEDED, 7, DT_NEEDED, DT_NULL, DT_NEEDED]);
        let bytes = elf_with_segment(PT_DYNAMIC, &entries);
        assert_eq!(
            linkage(&bytes).expect("a valid ELF file").needed_libraries,
            2
        );
    }

    #[test]
    fn this_test_binary_linked_against_glibc_is_not_static() {
        let path = std::env::current_exe().expect("the test binary's path");
        let bytes = std::fs::read(path).expect("reading the test binary");
        let linkage = linkage(&bytes).expect("the test binary is ELF");
        assert!(!linkage.is_static(), "{linkage:?}");
    }

    #[test]
    fn truncated_or_foreign_files_are_errors() {
        assert!(linkage(b"#!/bin/sh\n").is_err());
        let mut bytes = elf_with_segment(PT_INTERP, b"/lib/ld.so\0");
        bytes.truncate(100);
        assert!(linkage(&bytes).is_err());
    }
}
