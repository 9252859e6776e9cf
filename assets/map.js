/* dmlviz embedding map (src/project/map.rs): canvas drawing, grid index for hover,
   zoom and pan, class search and highlight, colour modes, box and lasso selection.
   Hand-written, no dependencies; text goes into the page only through textContent. */
(function () {
  'use strict';
  var D = window.DMLVIZ_MAP;
  var N = D.label.length, K = D.k, VW = D.view[0], VH = D.view[1];
  var F = { TEST: 1, UNSEEN: 2, GALLERY: 4, NN: 8, ADDED: 16 };
  var el = function (id) { return document.getElementById(id); };
  var canvas = el('map'), over = el('over'), box = el('mapbox');
  var ctx = canvas.getContext('2d'), octx = over.getContext('2d');
  var X = new Float32Array(N), Y = new Float32Array(N);
  for (var i = 0; i < N; i++) { X[i] = D.x[i] / 10; Y[i] = D.y[i] / 10; }

  /* View: screen = (unit * base) * zoom + pan, in CSS pixels of the canvas. */
  var view = { zoom: 1, tx: 0, ty: 0, base: 1, w: 0, h: 0, dpr: 1 };
  var state = { mode: 'class', focus: null, hover: -1, selected: [], drawMs: 0, draws: 0 };
  var R = N > 20000 ? 1.6 : N > 5000 ? 2.4 : N > 1000 ? 3.4 : 4.5;

  function resize() {
    var w = box.clientWidth || VW;
    view.dpr = window.devicePixelRatio || 1;
    view.w = w; view.h = w * VH / VW; view.base = w / VW;
    [canvas, over].forEach(function (c) {
      c.width = Math.round(view.w * view.dpr); c.height = Math.round(view.h * view.dpr);
      c.style.width = view.w + 'px'; c.style.height = view.h + 'px';
    });
    box.style.height = view.h + 'px';
  }
  function sx(i) { return X[i] * view.base * view.zoom + view.tx; }
  function sy(i) { return Y[i] * view.base * view.zoom + view.ty; }
  function unitX(px) { return (px - view.tx) / (view.base * view.zoom); }
  function unitY(py) { return (py - view.ty) / (view.base * view.zoom); }

  /* Uniform grid over the view's units: cell c holds ids[start[c] .. start[c+1]). */
  var GX = Math.max(1, Math.ceil(Math.sqrt(N / 4 * VW / VH))), GY = Math.max(1, Math.ceil(GX * VH / VW));
  var CW = VW / GX, CH = VH / GY;
  var start = new Uint32Array(GX * GY + 1), ids = new Uint32Array(N), cellOf = new Uint32Array(N);
  (function build() {
    var count = new Uint32Array(GX * GY);
    for (var i = 0; i < N; i++) {
      var c = Math.min(GY - 1, Math.floor(Y[i] / CH)) * GX + Math.min(GX - 1, Math.floor(X[i] / CW));
      cellOf[i] = c; count[c]++;
    }
    for (var c2 = 0; c2 < GX * GY; c2++) start[c2 + 1] = start[c2] + count[c2];
    var fill = start.slice(0, GX * GY);
    for (var j = 0; j < N; j++) ids[fill[cellOf[j]]++] = j;
  })();
  /* Calls f(i) for every point inside the unit rectangle [x0,x1]×[y0,y1]. */
  function inRect(x0, y0, x1, y1, f) {
    var cx0 = Math.max(0, Math.floor(x0 / CW)), cx1 = Math.min(GX - 1, Math.floor(x1 / CW));
    var cy0 = Math.max(0, Math.floor(y0 / CH)), cy1 = Math.min(GY - 1, Math.floor(y1 / CH));
    for (var cy = cy0; cy <= cy1; cy++) for (var cx = cx0; cx <= cx1; cx++) {
      var c = cy * GX + cx;
      for (var s = start[c]; s < start[c + 1]; s++) {
        var i = ids[s];
        if (X[i] >= x0 && X[i] <= x1 && Y[i] >= y0 && Y[i] <= y1) f(i);
      }
    }
  }
  /* Even-odd rule: whether (x, y) lies inside the polygon of flat [x0, y0, x1, y1, ...]. */
  function inPolygon(poly, x, y) {
    var inside = false, n = poly.length / 2;
    for (var a = 0, b = n - 1; a < n; b = a++) {
      var xa = poly[2 * a], ya = poly[2 * a + 1], xb = poly[2 * b], yb = poly[2 * b + 1];
      if ((ya > y) !== (yb > y) && x < (xb - xa) * (y - ya) / (yb - ya) + xa) inside = !inside;
    }
    return inside;
  }
  /* The visible point nearest to screen (px, py) within radius px, or -1. */
  function nearest(px, py, radius) {
    var ux = unitX(px), uy = unitY(py), ur = radius / (view.base * view.zoom), best = -1, bd = ur * ur;
    inRect(ux - ur, uy - ur, ux + ur, uy + ur, function (i) {
      if (dimmed(i)) return;
      var dx = X[i] - ux, dy = Y[i] - uy, d = dx * dx + dy * dy;
      if (d <= bd) { bd = d; best = i; }
    });
    return best;
  }

  var SPLIT = ['#4477aa', '#ee6677'], NNC = ['#cc3311', '#228833'], GREY = '#d5d8de';
  function colourIndex(i) {
    if (state.mode === 'split') return D.flags[i] & F.TEST ? 1 : 0;
    if (state.mode === 'nn') return D.flags[i] & F.NN ? 1 : 0;
    return D.label[i];
  }
  function palette() { return state.mode === 'split' ? SPLIT : state.mode === 'nn' ? NNC : D.colours; }
  function dimmed(i) { return state.focus !== null && !state.focus[D.label[i]]; }

  /* Points grouped by colour, in drawing order: train, then test, then added on top. */
  function groups() {
    var pal = palette(), g = pal.map(function () { return [[], [], []]; }), grey = [[], [], []];
    for (var i = 0; i < N; i++) {
      var layer = D.flags[i] & F.ADDED ? 2 : D.flags[i] & F.TEST ? 1 : 0;
      (dimmed(i) ? grey : g[colourIndex(i)])[layer].push(i);
    }
    return { pal: pal, g: g, grey: grey };
  }
  function shape(c, i, r) {
    var x = sx(i), y = sy(i);
    if (x < -r || y < -r || x > view.w + r || y > view.h + r) return;
    if (D.flags[i] & F.ADDED) { c.moveTo(x + r * 2.2, y); c.arc(x, y, r * 2.2, 0, 6.2832); }
    else if (D.flags[i] & F.TEST) { c.moveTo(x, y - r * 1.2); c.lineTo(x + r * 1.1, y + r); c.lineTo(x - r * 1.1, y + r); c.closePath(); }
    else c.rect(x - r, y - r, 2 * r, 2 * r);
  }
  function draw() {
    var t = performance.now(), r = R * Math.min(4, Math.sqrt(view.zoom));
    ctx.setTransform(view.dpr, 0, 0, view.dpr, 0, 0);
    ctx.clearRect(0, 0, view.w, view.h);
    var G = groups();
    var fillLayer = function (list, colour, layer) {
      if (!list[layer].length) return;
      ctx.fillStyle = colour; ctx.beginPath();
      for (var j = 0; j < list[layer].length; j++) shape(ctx, list[layer][j], r);
      ctx.fill();
      if (layer === 2) { ctx.lineWidth = 2; ctx.strokeStyle = '#000'; ctx.stroke(); }
    };
    for (var layer = 0; layer < 3; layer++) {
      fillLayer(G.grey, GREY, layer);
      for (var c = 0; c < G.g.length; c++) fillLayer(G.g[c], G.pal[c], layer);
    }
    /* Held-out classes: outlined, one stroke for all of them. */
    ctx.beginPath();
    for (var i = 0; i < N; i++) if ((D.flags[i] & F.UNSEEN) && !(D.flags[i] & F.ADDED) && !dimmed(i)) shape(ctx, i, r);
    ctx.lineWidth = 0.6; ctx.strokeStyle = '#000'; ctx.stroke();
    state.drawMs = performance.now() - t; state.draws++;
    drawOverlay();
  }
  var drag = null;
  function drawOverlay() {
    octx.setTransform(view.dpr, 0, 0, view.dpr, 0, 0);
    octx.clearRect(0, 0, view.w, view.h);
    octx.lineWidth = 2; octx.strokeStyle = '#000';
    if (state.hover >= 0) { octx.beginPath(); octx.arc(sx(state.hover), sy(state.hover), 8, 0, 6.2832); octx.stroke(); }
    if (drag && drag.select) {
      octx.setLineDash([4, 3]); octx.strokeRect(drag.x0, drag.y0, drag.x1 - drag.x0, drag.y1 - drag.y0); octx.setLineDash([]);
    }
    if (drag && drag.lasso) {
      octx.setLineDash([4, 3]); octx.beginPath();
      for (var v = 0; v < drag.lasso.length; v += 2) octx.lineTo(drag.lasso[v], drag.lasso[v + 1]);
      octx.closePath(); octx.stroke(); octx.setLineDash([]);
    }
    octx.strokeStyle = '#e07b00';
    octx.beginPath();
    state.selected.slice(0, 5000).forEach(function (i) { octx.moveTo(sx(i) + 4, sy(i)); octx.arc(sx(i), sy(i), 4, 0, 6.2832); });
    octx.stroke();
  }

  function path(i) { return D.prefix + D.paths[i]; }
  function className(i) { return D.classes[D.label[i]]; }
  function splitText(i) {
    var f = D.flags[i];
    if (f & F.ADDED) return 'added later (project --add or index add)';
    return (f & F.TEST ? 'test' : 'train') + (f & F.UNSEEN ? ' · held-out class' : '') + (f & F.GALLERY ? ' · in the galleries' : '');
  }
  /* Shows point i's sheet cell; the browser fetches a sheet the first time it is used. */
  function thumb(i) {
    var t = el('thumb'), added = i >= D.stored, s = added ? D.added_sprite : D.sprite;
    if (!s) { t.style.backgroundImage = 'none'; return; }
    var j = added ? i - D.stored : i, per = s.columns * s.rows, k = Math.floor(j / per), m = j % per;
    var rows = Math.min(s.rows, Math.ceil((s.count - k * per) / s.columns)), z = 64 / s.cell;
    t.style.backgroundImage = 'url("' + encodeURI(s.stem + '-' + k + '.jpg') + '")';
    t.style.backgroundSize = (s.columns * s.cell * z) + 'px ' + (rows * s.cell * z) + 'px';
    t.style.backgroundPosition = (-(m % s.columns) * 64) + 'px ' + (-Math.floor(m / s.columns) * 64) + 'px';
  }
  function show(i) {
    if (!(i >= 0 && i < N)) return;
    state.hover = i;
    el('p-class').textContent = className(i);
    el('p-split').textContent = splitText(i);
    el('p-path').textContent = path(i);
    thumb(i);
    var ol = el('p-near');
    while (ol.firstChild) ol.removeChild(ol.firstChild);
    for (var n = 0; n < K; n++) {
      var j = D.near[i * K + n], li = document.createElement('li');
      li.textContent = className(j) + ' (' + (D.flags[j] & F.TEST ? 'test' : 'train') + ') — ' + D.dist[i * K + n];
      ol.appendChild(li);
    }
    drawOverlay();
  }
  function galleryHref(i) { return D.flags[i] & F.GALLERY ? '../galleries/index.html#q' + i : '#p' + i; }

  /* Zoom by factor f around screen point (px, py). */
  function zoomAt(f, px, py) {
    var z = Math.max(0.5, Math.min(400, view.zoom * f));
    f = z / view.zoom;
    view.tx = px - (px - view.tx) * f; view.ty = py - (py - view.ty) * f; view.zoom = z;
    schedule();
  }
  var pending = false;
  function schedule() { if (!pending) { pending = true; requestAnimationFrame(function () { pending = false; draw(); }); } }
  function local(e) { var b = canvas.getBoundingClientRect(); return [e.clientX - b.left, e.clientY - b.top]; }

  over.addEventListener('wheel', function (e) {
    e.preventDefault(); var p = local(e); zoomAt(Math.exp(-e.deltaY * 0.0015), p[0], p[1]);
  }, { passive: false });
  over.addEventListener('mousedown', function (e) {
    var p = local(e);
    /* Alt-drag or the lasso toggle draws a loop (screen vertices); shift or box select a box. */
    var lasso = e.altKey || el('lasso-select').checked;
    drag = { x0: p[0], y0: p[1], x1: p[0], y1: p[1], tx: view.tx, ty: view.ty, moved: false,
      select: !lasso && (e.shiftKey || el('box-select').checked), lasso: lasso ? [p[0], p[1]] : null };
  });
  window.addEventListener('mousemove', function (e) {
    var p = local(e);
    if (drag) {
      drag.x1 = p[0]; drag.y1 = p[1];
      if (Math.abs(drag.x1 - drag.x0) + Math.abs(drag.y1 - drag.y0) > 3) drag.moved = true;
      if (drag.lasso) {
        var L = drag.lasso, lx = L[L.length - 2], ly = L[L.length - 1];
        if (Math.abs(p[0] - lx) + Math.abs(p[1] - ly) > 2) { L.push(p[0], p[1]); }
        drawOverlay();
      } else if (drag.select) drawOverlay();
      else if (drag.moved) { view.tx = drag.tx + drag.x1 - drag.x0; view.ty = drag.ty + drag.y1 - drag.y0; schedule(); }
      return;
    }
    if (e.target !== over) return;
    var i = nearest(p[0], p[1], 8);
    if (i >= 0 && i !== state.hover) show(i);
  });
  window.addEventListener('mouseup', function () {
    if (!drag) return;
    var d = drag; drag = null;
    if (d.lasso && d.moved) {
      if (d.lasso.length >= 6) selectLasso(d.lasso.map(function (v, k) { return k % 2 ? unitY(v) : unitX(v); }));
    } else if (d.select && d.moved) {
      selectBox(unitX(Math.min(d.x0, d.x1)), unitY(Math.min(d.y0, d.y1)), unitX(Math.max(d.x0, d.x1)), unitY(Math.max(d.y0, d.y1)));
    } else if (!d.moved) {
      var i = nearest(d.x0, d.y0, 8);
      if (i >= 0) location.href = galleryHref(i);
    }
    drawOverlay();
  });

  /* Box selection: every visible point in the unit rectangle. */
  function selectBox(x0, y0, x1, y1) {
    var chosen = [];
    inRect(x0, y0, x1, y1, function (i) { if (!dimmed(i)) chosen.push(i); });
    list(chosen);
  }
  /* Lasso selection: the grid's cells under the loop's bounding box give the candidates,
     the even-odd rule the points inside. poly: flat unit coordinates. */
  function selectLasso(poly) {
    var x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity, chosen = [];
    for (var v = 0; v < poly.length; v += 2) {
      x0 = Math.min(x0, poly[v]); x1 = Math.max(x1, poly[v]); y0 = Math.min(y0, poly[v + 1]); y1 = Math.max(y1, poly[v + 1]);
    }
    inRect(x0, y0, x1, y1, function (i) { if (!dimmed(i) && inPolygon(poly, X[i], Y[i])) chosen.push(i); });
    list(chosen);
  }
  /* Lists a selection by class, gallery queries first. */
  var LIST_MAX = 500;
  function list(chosen) {
    /* Gallery queries first (their entries say most), then in point order. */
    var g = function (i) { return D.flags[i] & F.GALLERY ? 0 : 1; };
    chosen.sort(function (a, b) { return g(a) - g(b) || a - b; });
    state.selected = chosen;
    var byClass = {};
    chosen.forEach(function (i) { byClass[className(i)] = (byClass[className(i)] || 0) + 1; });
    var top = Object.keys(byClass).sort(function (a, b) { return byClass[b] - byClass[a]; });
    el('sel-info').textContent = chosen.length + ' images selected, ' + top.length + ' classes' +
      (top.length ? ': ' + top.slice(0, 8).map(function (c) { return c + ' ' + byClass[c]; }).join(', ') : '') +
      (chosen.length > LIST_MAX ? ' (first ' + LIST_MAX + ' listed)' : '');
    var ol = el('sel-list');
    while (ol.firstChild) ol.removeChild(ol.firstChild);
    chosen.slice(0, LIST_MAX).forEach(function (i) {
      var li = document.createElement('li'), a = document.createElement('a');
      a.href = galleryHref(i); a.textContent = className(i);
      li.appendChild(a); li.appendChild(document.createTextNode(' · ' + splitText(i) + ' · ' + path(i)));
      ol.appendChild(li);
    });
    drawOverlay();
  }

  /* Highlight: a set of class indices (or null for all); search and legend set it. */
  function setFocus(classes) {
    state.focus = classes;
    document.querySelectorAll('.legend .cls').forEach(function (b) {
      b.classList.toggle('on', classes !== null && !!classes[+b.getAttribute('data-c')]);
    });
    schedule();
  }
  el('search').addEventListener('input', function () {
    var q = this.value.trim().toLowerCase();
    if (!q) { el('search-info').textContent = ''; setFocus(null); return; }
    var f = {}, nc = 0, np = 0;
    D.classes.forEach(function (c, k) { if (c.toLowerCase().indexOf(q) >= 0) { f[k] = true; nc++; } });
    for (var i = 0; i < N; i++) if (f[D.label[i]]) np++;
    el('search-info').textContent = nc + ' classes, ' + np + ' points';
    setFocus(f);
  });
  document.querySelectorAll('.legend .cls').forEach(function (b) {
    b.addEventListener('click', function () {
      var c = +b.getAttribute('data-c'), only = state.focus && Object.keys(state.focus).length === 1 && state.focus[c];
      var f = {}; f[c] = true; setFocus(only ? null : f);
    });
  });
  el('colour-by').addEventListener('change', function () {
    state.mode = this.value;
    var key = el('key');
    key.textContent = state.mode === 'split' ? 'blue: train image · red: test image'
      : state.mode === 'nn' ? 'green: the nearest other image is of the same class · red: it is not' : '';
    schedule();
  });
  el('zoom-in').addEventListener('click', function () { zoomAt(1.5, view.w / 2, view.h / 2); });
  el('zoom-out').addEventListener('click', function () { zoomAt(1 / 1.5, view.w / 2, view.h / 2); });
  el('zoom-reset').addEventListener('click', function () { view.zoom = 1; view.tx = 0; view.ty = 0; schedule(); });
  window.addEventListener('resize', function () { resize(); schedule(); });
  function fromHash() { var m = /^#p(\d+)$/.exec(location.hash); if (m) show(+m[1]); }
  window.addEventListener('hashchange', fromHash);

  /* For tests and scripts: read-only views of the state, and where a point is drawn. */
  window.dmlvizMap = {
    screenOf: function (i) { var b = canvas.getBoundingClientRect(); return [b.left + sx(i), b.top + sy(i)]; },
    visibleCount: function () {
      var n = 0;
      inRect(unitX(0), unitY(0), unitX(view.w), unitY(view.h), function (i) { if (!dimmed(i)) n++; });
      return n;
    },
    zoom: function () { return view.zoom; },
    selected: function () { return state.selected.slice(); },
    hovered: function () { return state.hover; },
    focused: function () { return state.focus === null ? null : Object.keys(state.focus).map(Number); },
    stats: state
  };
  resize();
  draw();
  /* First draw done: time since navigation started (parsing the data included). */
  window.DMLVIZ_MAP_FIRST_DRAW = performance.now();
  fromHash();
})();
