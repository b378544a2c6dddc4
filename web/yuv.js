// pixelflux web client: H.264 pictures (planar YUV from WebCodecs) to RGB, exactly as a
// reference decoder's converter (ffmpeg) does: the colour description's matrix and range,
// chroma repeated over its 2x2 pixels (nearest, no interpolation), fixed-point rounding.
// Loaded by the page (client.js) and by the conversion worker (yuv-worker.js); both
// converters here make the same pixels bit for bit (tests/browser/yuv.test.mjs):
//   yuvToRgba:      JavaScript, lookup tables, into RGBA words
//   GlConverter:    a WebGL2 fragment shader doing the same integer arithmetic with the same
//                   tables (integer textures, texelFetch), into an (offscreen) canvas
'use strict';

(() => {
  // YUV → RGB lookup tables for one colour description, in fixed point (x 2^12): Y's value,
  // and each chroma value's share of R, G and B; a sum (offset by CLAMP_OFF) shifted down by
  // FIX and clamped to 0..255 is the colour, so the inner loop is integer adds, shifts and
  // table reads.
  const FIX = 12;
  const CLAMP_OFF = 1024;
  const clamp = new Uint8Array(2048 + 256);
  for (let i = 0; i < clamp.length; i++) clamp[i] = Math.max(0, Math.min(255, i - CLAMP_OFF));
  const yuvTables = new Map();
  function tablesFor(colorSpace) {
    // Our encoder writes BT.709 limited range into the VUI; BT.601 is handled for streams
    // from elsewhere. Unknown or missing descriptions are taken as BT.709 limited.
    const matrix = colorSpace && (colorSpace.matrix === 'smpte170m' || colorSpace.matrix === 'bt470bg')
      ? 'bt601' : 'bt709';
    const full = !!(colorSpace && colorSpace.fullRange);
    const key = `${matrix}/${full}`;
    let t = yuvTables.get(key);
    if (t) return t;
    const [kr, kb] = matrix === 'bt601' ? [0.299, 0.114] : [0.2126, 0.0722];
    const kg = 1 - kr - kb;
    const ys = full ? 1 : 255 / 219;
    const cs = full ? 1 : 255 / 224;
    const y0 = full ? 0 : 16;
    const one = 1 << FIX;
    t = {
      key,
      y: new Int32Array(256), rv: new Int32Array(256), gu: new Int32Array(256),
      gv: new Int32Array(256), bu: new Int32Array(256),
    };
    for (let i = 0; i < 256; i++) {
      const c = (i - 128) * cs;
      // The rounding half and the clamp offset ride in Y's entry.
      t.y[i] = Math.round(((i - y0) * ys + 0.5 + CLAMP_OFF) * one);
      t.rv[i] = Math.round(2 * (1 - kr) * c * one);
      t.gu[i] = Math.round(-2 * kb * (1 - kb) / kg * c * one);
      t.gv[i] = Math.round(-2 * kr * (1 - kr) / kg * c * one);
      t.bu[i] = Math.round(2 * (1 - kb) * c * one);
    }
    yuvTables.set(key, t);
    return t;
  }

  // Converts planar YUV (I420, I444 or NV12 as VideoFrame.copyTo lays it out) to RGBA words
  // (`out` is a Uint32Array over the ImageData: little-endian, so 0xAABBGGRR).
  // 4:2:0 chroma samples are repeated over their 2x2 pixels, as ffmpeg's converter does:
  // measured on the desktop scene, bilinear interpolation came out 0.15 dB worse against the
  // source and 36 dB (instead of 47 dB) against ffmpeg's picture.
  function yuvToRgba(buf, layout, format, w, h, t, out) {
    const Y = buf.subarray(layout[0].offset);
    const U = buf.subarray(layout[1].offset);
    const V = format === 'NV12' ? U : buf.subarray(layout[2].offset);
    const ys = layout[0].stride;
    const cs = layout[1].stride;
    const full = format === 'I444';
    const step = format === 'NV12' ? 2 : 1; // NV12 interleaves U and V
    const vOff = format === 'NV12' ? 1 : 0;
    const { y: ty, rv, gu, gv, bu } = t;
    let o = 0;
    for (let r = 0; r < h; r++) {
      let yi = r * ys;
      const crow = (full ? r : r >> 1) * cs;
      for (let x = 0; x < w; x++, yi++, o++) {
        const ci = crow + (full ? x : (x >> 1) * step);
        const l = ty[Y[yi]];
        const u = U[ci];
        const v = V[ci + vOff];
        const R = clamp[(l + rv[v]) >> FIX];
        const G = clamp[(l + gu[u] + gv[v]) >> FIX];
        const B = clamp[(l + bu[u]) >> FIX];
        out[o] = 0xff000000 | (B << 16) | (G << 8) | R;
      }
    }
  }

  const VERTEX = `#version 300 es
void main() {
  // One triangle covering the viewport, no vertex buffers.
  gl_Position = vec4(float((gl_VertexID & 1) * 4 - 1), float((gl_VertexID & 2) * 2 - 1), 0.0, 1.0);
}`;
  // The same integer sums as yuvToRgba: the tables are a 256x5 R32I texture (rows: y, rv,
  // gu, gv, bu), the planes 8-bit unsigned integer textures read with texelFetch (nearest
  // chroma: the sample at x >> shift, row >> shift). A whole number over 255 written to an
  // 8-bit colour buffer is that number exactly.
  const FRAGMENT = `#version 300 es
precision highp float;
precision highp int;
precision highp usampler2D;
precision highp isampler2D;
uniform usampler2D uY;
uniform usampler2D uU;
uniform usampler2D uV;
uniform isampler2D uT;
uniform int uH;
uniform int uShift;
uniform bool uNv12;
out vec4 color;
int channel(int sum) { return clamp((sum >> ${FIX}) - ${CLAMP_OFF}, 0, 255); }
void main() {
  int x = int(gl_FragCoord.x);
  int r = uH - 1 - int(gl_FragCoord.y);
  ivec2 c = ivec2(x >> uShift, r >> uShift);
  uvec4 uv = texelFetch(uU, c, 0);
  int u = int(uv.r);
  int v = uNv12 ? int(uv.g) : int(texelFetch(uV, c, 0).r);
  int l = texelFetch(uT, ivec2(int(texelFetch(uY, ivec2(x, r), 0).r), 0), 0).r;
  int R = channel(l + texelFetch(uT, ivec2(v, 1), 0).r);
  int G = channel(l + texelFetch(uT, ivec2(u, 2), 0).r + texelFetch(uT, ivec2(v, 3), 0).r);
  int B = channel(l + texelFetch(uT, ivec2(u, 4), 0).r);
  color = vec4(float(R), float(G), float(B), 255.0) / 255.0;
}`;

  // WebGL2 conversion into its own canvas (an OffscreenCanvas where there is one), sized to
  // the last picture: draw it (drawImage) or take it (transferToImageBitmap) right after
  // `convert`. `GlConverter.create()` is null where WebGL2 or the shader is missing.
  class GlConverter {
    static create() {
      try {
        const canvas = typeof OffscreenCanvas !== 'undefined'
          ? new OffscreenCanvas(1, 1) : document.createElement('canvas');
        const gl = canvas.getContext('webgl2', {
          alpha: false, antialias: false, depth: false, stencil: false,
          premultipliedAlpha: false, preserveDrawingBuffer: false, desynchronized: false,
        });
        if (!gl) return null;
        const c = new GlConverter(canvas, gl);
        return c.program ? c : null;
      } catch {
        return null;
      }
    }

    constructor(canvas, gl) {
      this.canvas = canvas;
      this.gl = gl;
      this.program = null;
      const shader = (type, src) => {
        const s = gl.createShader(type);
        gl.shaderSource(s, src);
        gl.compileShader(s);
        return gl.getShaderParameter(s, gl.COMPILE_STATUS) ? s : null;
      };
      const vs = shader(gl.VERTEX_SHADER, VERTEX);
      const fs = shader(gl.FRAGMENT_SHADER, FRAGMENT);
      if (!vs || !fs) return;
      const p = gl.createProgram();
      gl.attachShader(p, vs);
      gl.attachShader(p, fs);
      gl.linkProgram(p);
      if (!gl.getProgramParameter(p, gl.LINK_STATUS)) return;
      gl.useProgram(p);
      this.uniforms = {};
      for (const [name, unit] of [['uY', 0], ['uU', 1], ['uV', 2], ['uT', 3]]) {
        gl.uniform1i(gl.getUniformLocation(p, name), unit);
      }
      for (const name of ['uH', 'uShift', 'uNv12']) this.uniforms[name] = gl.getUniformLocation(p, name);
      // Per texture unit: the texture and the size it was allocated at.
      this.textures = [0, 1, 2, 3].map(() => ({ tex: this.newTexture(), w: 0, h: 0, fmt: 0 }));
      this.tablesKey = null;
      gl.bindVertexArray(gl.createVertexArray());
      gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
      this.program = p;
    }

    newTexture() {
      const gl = this.gl;
      const tex = gl.createTexture();
      gl.bindTexture(gl.TEXTURE_2D, tex);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
      return tex;
    }

    // Uploads `w` x `h` texels to texture unit `unit`; `rowLength` in texels.
    upload(unit, internal, format, type, w, h, rowLength, data, offset) {
      const gl = this.gl;
      const t = this.textures[unit];
      gl.activeTexture(gl.TEXTURE0 + unit);
      gl.bindTexture(gl.TEXTURE_2D, t.tex);
      gl.pixelStorei(gl.UNPACK_ROW_LENGTH, rowLength);
      if (t.w !== w || t.h !== h || t.fmt !== internal) {
        gl.texImage2D(gl.TEXTURE_2D, 0, internal, w, h, 0, format, type, data, offset);
        t.w = w;
        t.h = h;
        t.fmt = internal;
      } else {
        gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, w, h, format, type, data, offset);
      }
    }

    // Converts the planes (as `yuvToRgba` takes them) into `this.canvas`, resized to w x h.
    // Returns false when the context is lost.
    convert(buf, layout, format, w, h, t) {
      const gl = this.gl;
      if (gl.isContextLost()) return false;
      if (this.canvas.width !== w || this.canvas.height !== h) {
        this.canvas.width = w;
        this.canvas.height = h;
      }
      const full = format === 'I444';
      const nv12 = format === 'NV12';
      const cw = full ? w : (w + 1) >> 1;
      const ch = full ? h : (h + 1) >> 1;
      this.upload(0, gl.R8UI, gl.RED_INTEGER, gl.UNSIGNED_BYTE, w, h, layout[0].stride, buf, layout[0].offset);
      if (nv12) {
        this.upload(1, gl.RG8UI, gl.RG_INTEGER, gl.UNSIGNED_BYTE, cw, ch, layout[1].stride >> 1, buf, layout[1].offset);
        // uV is not read; it only needs a complete unsigned texture: the same one.
        gl.activeTexture(gl.TEXTURE2);
        gl.bindTexture(gl.TEXTURE_2D, this.textures[1].tex);
      } else {
        this.upload(1, gl.R8UI, gl.RED_INTEGER, gl.UNSIGNED_BYTE, cw, ch, layout[1].stride, buf, layout[1].offset);
        this.upload(2, gl.R8UI, gl.RED_INTEGER, gl.UNSIGNED_BYTE, cw, ch, layout[2].stride, buf, layout[2].offset);
      }
      if (this.tablesKey !== t.key) {
        const all = new Int32Array(256 * 5);
        [t.y, t.rv, t.gu, t.gv, t.bu].forEach((row, i) => all.set(row, i * 256));
        this.upload(3, gl.R32I, gl.RED_INTEGER, gl.INT, 256, 5, 256, all, 0);
        this.tablesKey = t.key;
      }
      gl.uniform1i(this.uniforms.uH, h);
      gl.uniform1i(this.uniforms.uShift, full ? 0 : 1);
      gl.uniform1i(this.uniforms.uNv12, nv12 ? 1 : 0);
      gl.viewport(0, 0, w, h);
      gl.drawArrays(gl.TRIANGLES, 0, 3);
      return true;
    }
  }

  self.pixelfluxYuv = { tablesFor, yuvToRgba, GlConverter };
})();
