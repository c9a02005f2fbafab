use super::*;

#[test]
fn dirty_runs_group_pages() {
    assert_eq!(dirty_runs(&[0]), vec![]);
    assert_eq!(dirty_runs(&[0b1110_0001]), vec![(0, 1), (5, 3)]);
    assert_eq!(dirty_runs(&[1 << 63, 1]), vec![(63, 2)]);
    assert_eq!(dirty_runs(&[u64::MAX]), vec![(0, 64)]);
}

fn header(version: u32, len: u64, crc: u32) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(&version.to_le_bytes());
    h.extend_from_slice(&[0; 4]);
    h.extend_from_slice(&len.to_le_bytes());
    h.extend_from_slice(&crc.to_le_bytes());
    h.extend_from_slice(&[0; 4]);
    h
}

#[test]
fn refuses_bad_files_with_one_line_naming_the_file() {
    let p = Path::new("/x/vm.snap");
    let msg = |bytes: &[u8]| decode(p, bytes).unwrap_err().to_string();
    assert!(msg(b"VMDB").contains("truncated"));
    assert!(msg(&[0u8; 40]).contains("wrong magic"));
    assert!(msg(&header(FORMAT_VERSION + 1, 0, 0)).contains("format version"));
    let mut h = header(FORMAT_VERSION, 4, crc32fast::hash(b"{}{}"));
    assert!(msg(&h).contains("truncated"));
    h.extend_from_slice(b"{}{]");
    assert!(msg(&h).contains("checksum mismatch"));
    let mut ok = header(FORMAT_VERSION, 2, crc32fast::hash(b"{}"));
    ok.extend_from_slice(b"{}");
    assert!(msg(&ok).contains("unreadable state"));
    for bytes in [&b"VMDB"[..], &ok] {
        let m = msg(bytes);
        assert!(m.starts_with("snapshot file /x/vm.snap: "), "{m}");
        assert!(!m.contains('\n'), "{m}");
    }
}
