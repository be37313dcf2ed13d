//! Builds `src/process/video/shim.c`, the snapshot's one C file, against
//! FFmpeg's own headers (Debian 12: FFmpeg 5.1, from `libavformat-dev`,
//! `libavcodec-dev`, `libswscale-dev`; `deploy/install-deps.sh` installs them).
//! FFmpeg's structs stay in C, where its headers define them; Rust sees a few
//! functions and one plain struct (`process::video::ffmpeg`).

fn main() {
    println!("cargo:rerun-if-changed=src/process/video/shim.c");
    let mut build = cc::Build::new();
    for lib in ["libavformat", "libavcodec", "libavutil", "libswscale"] {
        let found = pkg_config::Config::new()
            .cargo_metadata(false)
            .atleast_version(match lib {
                "libavformat" => "59",
                "libavcodec" => "59",
                "libavutil" => "57",
                _ => "6",
            })
            .probe(lib)
            .unwrap_or_else(|e| {
                panic!("{lib} (FFmpeg 5.1 or later) is needed for video snapshots: {e}; run deploy/install-deps.sh")
            });
        for p in found.include_paths {
            build.include(p);
        }
    }
    build
        .file("src/process/video/shim.c")
        .flag_if_supported("-Wall")
        .flag_if_supported("-Wextra")
        .flag_if_supported("-Wno-unused-parameter")
        .warnings_into_errors(true)
        .compile("pixmirror_video");
    // After the archive, so the linker sees what it needs from them.
    for lib in ["avformat", "avcodec", "avutil", "swscale", "m"] {
        println!("cargo:rustc-link-lib={lib}");
    }
}
