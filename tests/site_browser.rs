//! The generated site in a real browser: headless Chromium opens the comparison
//! page, each run page and the maps, galleries and explanations pages copied beside
//! them, and checks that no page logs a console error, every image loads
//! (`complete` with a natural width), every link resolves, and hovering a point of
//! an embedding map shows a thumbnail. Screenshots go to `target/site-screenshots/`.
//!
//! Chromium is driven through the DevTools protocol over a pipe (`common::browser`).
//! Without one the test prints why and passes, unless `DMLVIZ_REQUIRE_BROWSER`
//! is set (CI), where a missing browser fails it.

mod common;

use common::browser::{base64_decode, file_url, find_chromium, Browser};
use common::{dmlviz, ok, tiny_run, write_tiny_grid};
use dmlviz::report::check::percent_decode;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Makes every lazy image load, waits for all images, and returns those that did
/// not load.
const IMAGES_JS: &str = r#"(async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = 'eager'; });
  for (let y = 0; y < document.body.scrollHeight; y += 700) { window.scrollTo(0, y); await new Promise(r => setTimeout(r, 15)); }
  window.scrollTo(0, 0);
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); setTimeout(r, 10000); })));
  return imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'));
})()"#;

/// Visible thumbnails: loaded images and elements painted with a background image.
const THUMBS_JS: &str = r#"(() => {
  const seen = el => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none' && s.opacity !== '0'; };
  let n = 0;
  document.querySelectorAll('body *').forEach(el => {
    if (!seen(el)) return;
    if (el.tagName === 'IMG' && el.complete && el.naturalWidth > 0) n++;
    else if (el.tagName === 'image' || /url\(/.test(getComputedStyle(el).backgroundImage)) n++;
  });
  return n;
})()"#;

/// The centre of the first data point of an embedding map (the canvas map's own
/// `dmlvizMap.screenOf`, else an SVG circle or element marked as a point), or null.
const POINT_JS: &str = r#"(() => {
  if (window.dmlvizMap) return window.dmlvizMap.screenOf(0);
  const el = Array.from(document.querySelectorAll('circle, [data-index], [data-i], .point, .pt'))
    .find(e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0 && r.top >= 0 && r.top < innerHeight; });
  if (!el) return null;
  const r = el.getBoundingClientRect();
  return [r.left + r.width / 2, r.top + r.height / 2];
})()"#;

/// Checks a link target (absolute `file://` URL from the browser) exists on disk
/// inside the site, and that its fragment names an element of the target page.
fn check_link(site: &Path, page: &str, href: &str) -> Option<String> {
    if href.starts_with("javascript:") || href.starts_with("data:") || href.starts_with("mailto:") {
        return None;
    }
    let Some(rest) = href.strip_prefix("file://") else {
        return Some(format!("{page}: non-local link {href}"));
    };
    let (path, fragment) = rest
        .split_once('#')
        .map_or((rest, None), |(p, f)| (p, Some(f)));
    let path = PathBuf::from(percent_decode(path.split('?').next().unwrap()));
    let site = site.canonicalize().unwrap();
    match path.canonicalize() {
        Err(_) => Some(format!("{page}: broken link {href}")),
        Ok(p) if !p.starts_with(&site) => Some(format!("{page}: link leaves the site: {href}")),
        Ok(p) => {
            let fragment = fragment.map(percent_decode).filter(|f| !f.is_empty())?;
            let html = std::fs::read_to_string(&p).ok()?;
            (!html.contains(&format!("id=\"{fragment}\"")))
                .then(|| format!("{page}: no #{fragment} in {}", p.display()))
        }
    }
}

/// Opens one page: returns the problems found; saves a screenshot.
fn visit(browser: &mut Browser, site: &Path, page: &Path, shots: &Path) -> Vec<String> {
    let name = page.strip_prefix(site).unwrap().display().to_string();
    let (target, session) = browser.new_page();
    browser.call(
        Some(&session),
        "Page.navigate",
        json!({ "url": file_url(page) }),
    );
    browser.wait_event(&session, "Page.loadEventFired");
    let mut problems = Vec::new();
    let unloaded = browser.eval(&session, IMAGES_JS);
    for src in unloaded.as_array().unwrap() {
        problems.push(format!("{name}: image did not load: {src}"));
    }
    let links = browser.eval(
        &session,
        "Array.from(document.querySelectorAll('a[href]')).map(a => a.href)",
    );
    for href in links.as_array().unwrap() {
        problems.extend(check_link(site, &name, href.as_str().unwrap()));
    }
    if page.parent().is_some_and(|p| p.ends_with("projections")) {
        let before = browser.eval(&session, THUMBS_JS).as_u64().unwrap();
        let point = browser.eval(&session, POINT_JS);
        match point.as_array() {
            None => problems.push(format!("{name}: no point to hover on the map")),
            Some(xy) => {
                let (x, y) = (xy[0].as_f64().unwrap(), xy[1].as_f64().unwrap());
                browser.call(
                    Some(&session),
                    "Input.dispatchMouseEvent",
                    json!({ "type": "mouseMoved", "x": x, "y": y }),
                );
                std::thread::sleep(Duration::from_millis(400));
                let after = browser.eval(&session, THUMBS_JS).as_u64().unwrap();
                if after <= before {
                    problems.push(format!(
                        "{name}: hovering the point at ({x:.0}, {y:.0}) showed no thumbnail"
                    ));
                }
            }
        }
    }
    let height = browser
        .eval(&session, "document.documentElement.scrollHeight")
        .as_f64()
        .unwrap_or(900.0)
        .min(5000.0);
    let shot = browser.call(
        Some(&session),
        "Page.captureScreenshot",
        json!({ "format": "png", "captureBeyondViewport": true, "clip": { "x": 0, "y": 0, "width": 1280, "height": height, "scale": 1 } }),
    );
    let file = shots.join(format!(
        "{}.png",
        name.replace(['/', ' '], "_").trim_end_matches(".html")
    ));
    std::fs::write(&file, base64_decode(shot["data"].as_str().unwrap())).unwrap();
    println!("screenshot: {}", file.display());
    problems.extend(
        browser
            .take_errors(&session)
            .into_iter()
            .map(|e| format!("{name}: {e}")),
    );
    browser.call(None, "Target.closeTarget", json!({ "targetId": target }));
    problems
}

#[test]
fn site_opens_in_headless_chromium() {
    let Some(chromium) = find_chromium() else {
        if std::env::var_os("DMLVIZ_REQUIRE_BROWSER").is_some() {
            panic!("DMLVIZ_REQUIRE_BROWSER is set but no chromium was found (set CHROMIUM or install Debian's chromium)");
        }
        println!(
            "SKIPPED: no chromium on PATH (install Debian's chromium, or set CHROMIUM); set DMLVIZ_REQUIRE_BROWSER to make this a failure"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let run = tiny_run(&runs, "epshn", "");
    std::fs::write(
        run.join("deductions.md"),
        "- **tiny**: one epoch, `scratch` init <not> a result\n",
    )
    .unwrap();
    ok(dmlviz(&[
        "explain",
        "--run",
        run.to_str().unwrap(),
        "--samples",
        "4",
    ]));
    ok(dmlviz(&[
        "project",
        "--run",
        run.to_str().unwrap(),
        "--method",
        "both",
    ]));
    // The study page: a tiny grid run by `dmlviz study`, its runs beside the others.
    let grid = tmp.path().join("grid");
    write_tiny_grid(&grid);
    let site = tmp.path().join("site");
    ok(dmlviz(&[
        "study",
        "--grid",
        grid.to_str().unwrap(),
        "--runs",
        runs.join("study").to_str().unwrap(),
        "--site-runs",
        runs.to_str().unwrap(),
        "--out",
        site.to_str().unwrap(),
    ]));
    ok(dmlviz(&[
        "report",
        "--runs",
        runs.to_str().unwrap(),
        "--out",
        site.to_str().unwrap(),
    ]));

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/site-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let mut pages = vec![
        site.join("index.html"),
        site.join("runs/run/index.html"),
        site.join("study.html"),
    ];
    for phase in ["phase-all", "phase-seen"] {
        for folder in ["projections", "galleries", "explanations"] {
            pages.extend(dmlviz::report::check::html_files(
                &site.join("runs/run").join(phase).join(folder),
            ));
        }
    }
    let maps = pages
        .iter()
        .filter(|p| p.parent().is_some_and(|d| d.ends_with("projections")))
        .count();
    assert!(
        pages
            .iter()
            .any(|p| p.ends_with("phase-all/explanations/index.html")),
        "explanations were not copied into the site"
    );
    assert!(maps > 0, "the site has no interactive map");

    let mut browser = Browser::launch(&chromium);
    let version = browser.call(None, "Browser.getVersion", json!({}));
    println!("browser: {}", version["product"]);
    let mut problems = Vec::new();
    for page in &pages {
        problems.extend(visit(&mut browser, &site, page, &shots));
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    println!(
        "{} pages checked ({maps} maps hovered); screenshots in {}",
        pages.len(),
        shots.display()
    );
}

/// An existing site (e.g. the demo's `reports/`), when `DMLVIZ_SITE` names it:
/// every page of it gets the same checks, screenshots in
/// `target/site-screenshots/existing/`. Without the variable there is nothing to check.
#[test]
fn existing_site_named_by_env_opens_cleanly() {
    let Some(site) = std::env::var_os("DMLVIZ_SITE").map(PathBuf::from) else {
        println!("nothing to check: set DMLVIZ_SITE to a site folder (e.g. reports) to check it in the browser");
        return;
    };
    let chromium = find_chromium().expect("DMLVIZ_SITE is set but no chromium was found");
    let site = if site.is_absolute() {
        site
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(site)
    };
    let pages = dmlviz::report::check::html_files(&site);
    assert!(!pages.is_empty(), "no HTML page under {}", site.display());
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/site-screenshots/existing");
    std::fs::create_dir_all(&shots).unwrap();
    let mut browser = Browser::launch(&chromium);
    let problems: Vec<String> = pages
        .iter()
        .flat_map(|p| visit(&mut browser, &site, p, &shots))
        .collect();
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    println!("{} pages of {} checked", pages.len(), site.display());
}

/// The checks themselves catch what they should: a page with a missing image, a
/// console error and a broken link, a map whose hover shows a thumbnail, and one
/// whose hover shows nothing.
#[test]
fn browser_checks_catch_broken_pages() {
    let Some(chromium) = find_chromium() else {
        if std::env::var_os("DMLVIZ_REQUIRE_BROWSER").is_some() {
            panic!("DMLVIZ_REQUIRE_BROWSER is set but no chromium was found");
        }
        println!("SKIPPED: no chromium on PATH");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path();
    std::fs::create_dir_all(site.join("projections")).unwrap();
    image::RgbImage::from_pixel(8, 8, image::Rgb([200, 30, 30]))
        .save(site.join("projections/thumb.png"))
        .unwrap();
    std::fs::write(
        site.join("bad.html"),
        "<!DOCTYPE html><html><body><img src=\"missing.png\"><a href=\"nowhere.html\">x</a><script>console.error('boom')</script></body></html>",
    )
    .unwrap();
    let map = |hover: &str| {
        format!(
            "<!DOCTYPE html><html><body><svg width=\"200\" height=\"200\"><circle cx=\"50\" cy=\"50\" r=\"6\" fill=\"red\" \
             onmouseover=\"{hover}\"></circle></svg><img id=\"tip\" src=\"thumb.png\" style=\"display:none\"></body></html>"
        )
    };
    std::fs::write(
        site.join("projections/good.html"),
        map("document.getElementById('tip').style.display='block'"),
    )
    .unwrap();
    std::fs::write(site.join("projections/dead.html"), map("")).unwrap();
    let shots = tmp.path().join("shots");
    std::fs::create_dir_all(&shots).unwrap();
    let mut browser = Browser::launch(&chromium);
    let bad = visit(&mut browser, site, &site.join("bad.html"), &shots).join("\n");
    assert!(bad.contains("image did not load: \"missing.png\""), "{bad}");
    assert!(
        bad.contains("broken link") && bad.contains("nowhere.html"),
        "{bad}"
    );
    assert!(bad.contains("boom"), "console error not caught: {bad}");
    assert_eq!(
        visit(
            &mut browser,
            site,
            &site.join("projections/good.html"),
            &shots
        ),
        Vec::<String>::new()
    );
    let dead = visit(
        &mut browser,
        site,
        &site.join("projections/dead.html"),
        &shots,
    );
    assert!(
        dead.len() == 1 && dead[0].contains("showed no thumbnail"),
        "{dead:?}"
    );
}

#[test]
fn base64_round_trip() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(base64_decode("YWJj"), b"abc");
}
