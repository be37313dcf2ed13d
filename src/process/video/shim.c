/*
 * pixmirror's one C file: a snapshot of one video frame through FFmpeg's
 * libraries (Debian 12: FFmpeg 5.1). FFmpeg's structs are used only here,
 * where its own headers define them; Rust sees five functions and one plain
 * struct (process/video/ffmpeg.rs).
 *
 * Bytes come from the caller's read/seek callbacks (ranged reads of the
 * bucket), never from a file or URL: no protocol is opened. Only the MP4/MOV
 * and Matroska demuxers may probe the input, and only H.264 and H.265 are
 * decoded, on one thread, with the decoder's max_pixels set to the caller's
 * limit. The stop callback is FFmpeg's interrupt callback and is also asked
 * between packets: past the deadline or the read limit the run ends.
 */
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libavutil/mem.h>
#include <libswscale/swscale.h>
#include <math.h>

typedef int (*pm_read_fn)(void *opaque, uint8_t *buf, int size);
typedef int64_t (*pm_seek_fn)(void *opaque, int64_t offset, int whence);
typedef int (*pm_stop_fn)(void *opaque);
/* Asks for `bytes` more memory; 0: granted. Refused, the stop callback then says stop. */
typedef int (*pm_grow_fn)(void *opaque, int64_t bytes);

typedef struct {
    int width, height;   /* the coded picture, from the container */
    int64_t duration_ms; /* -1: unknown */
    int rotation;        /* clockwise degrees that make it upright: 0, 90, 180, 270 */
    int codec;           /* 1: H.264, 2: H.265 */
} pm_info;

enum {
    PM_OK = 0,
    PM_NOT_VIDEO = -1, /* no demuxer took it, or no video stream */
    PM_CODEC = -2,     /* a video codec other than H.264 / H.265 */
    PM_TOO_LARGE = -3, /* more pixels than the caller allows */
    PM_NO_FRAME = -4,  /* nothing decodable */
    PM_STOPPED = -5,   /* the stop callback said so (deadline, read limit, read error) */
    PM_NOMEM = -6,
};

typedef struct pm_video {
    AVFormatContext *fmt;
    AVIOContext *io;
    AVCodecContext *dec;
    AVFrame *frame; /* the chosen frame */
    AVFrame *next;
    AVPacket *pkt;
    int stream;
    pm_stop_fn stop;
    pm_grow_fn grow;
    void *opaque;
    pm_info info;
    int64_t live;     /* bytes of the decoder's pictures alive now */
    int64_t reserved; /* the most ever granted by grow */
} pm_video;

/* One decoder picture as pixmirror hands it out: the decoder's own buffer,
 * and what it counted. */
typedef struct {
    AVBufferRef *orig;
    pm_video *v;
    int64_t bytes;
} pm_picture;

static void pm_picture_free(void *opaque, uint8_t *data) {
    (void)data;
    pm_picture *p = opaque;
    p->v->live -= p->bytes;
    av_buffer_unref(&p->orig);
    av_free(p);
}

/*
 * Every picture the decoder allocates passes here (the decoders are DR1):
 * its bytes are counted while it lives, and the caller is asked for more
 * memory before the live pictures pass what it granted. The count is the
 * picture's planes and one byte a pixel for the tables the decoder keeps
 * per picture in its own pools (H.264's motion vectors, reference indexes
 * and macroblock types come to about 0.55 B/px, HEVC's motion field to
 * 0.75). Nothing else decides how many pictures a stream keeps: its own
 * parameters (up to 16 references) do.
 */
static int pm_get_buffer(AVCodecContext *s, AVFrame *f, int flags) {
    pm_video *v = s->opaque;
    int r = avcodec_default_get_buffer2(s, f, flags);
    if (r < 0)
        return r;
    int64_t bytes = 0;
    for (int i = 0; i < AV_NUM_DATA_POINTERS && f->buf[i]; i++)
        bytes += f->buf[i]->size;
    bytes += (int64_t)f->width * f->height;
    if (v->live + bytes > v->reserved) {
        int64_t more = v->live + bytes - v->reserved;
        if (v->grow(v->opaque, more) != 0) {
            av_frame_unref(f);
            return AVERROR(ENOMEM);
        }
        v->reserved += more;
    }
    pm_picture *p = av_mallocz(sizeof(pm_picture));
    AVBufferRef *wrap =
        p ? av_buffer_create(f->buf[0]->data, f->buf[0]->size, pm_picture_free, p, 0) : NULL;
    if (!wrap) {
        av_free(p);
        av_frame_unref(f);
        return AVERROR(ENOMEM);
    }
    p->orig = f->buf[0];
    p->v = v;
    p->bytes = bytes;
    f->buf[0] = wrap;
    v->live += bytes;
    return 0;
}

#define PM_IO_BUFFER (64 * 1024)

void pm_close(pm_video *v) {
    if (!v)
        return;
    av_frame_free(&v->frame);
    av_frame_free(&v->next);
    av_packet_free(&v->pkt);
    avcodec_free_context(&v->dec);
    avformat_close_input(&v->fmt);
    if (v->io) {
        av_freep(&v->io->buffer);
        avio_context_free(&v->io);
    }
    av_free(v);
}

/* Clockwise degrees from the display matrix, as ffmpeg's own tools read it. */
static int rotation_of(const AVStream *st) {
    const int32_t *m = (const int32_t *)av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, NULL);
    if (!m)
        return 0;
    double theta = -round(av_display_rotation_get(m));
    if (isnan(theta))
        return 0;
    theta -= 360 * floor(theta / 360 + 0.9 / 360);
    int r = ((int)lround(theta / 90.0) * 90) % 360;
    return r < 0 ? r + 360 : r;
}

static int open_input(pm_video *v, pm_read_fn read, pm_seek_fn seek) {
    uint8_t *buf = av_malloc(PM_IO_BUFFER);
    if (!buf)
        return PM_NOMEM;
    v->io = avio_alloc_context(buf, PM_IO_BUFFER, 0, v->opaque, read, NULL, seek);
    if (!v->io) {
        av_free(buf);
        return PM_NOMEM;
    }
    AVFormatContext *fmt = avformat_alloc_context();
    if (!fmt)
        return PM_NOMEM;
    fmt->pb = v->io;
    fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    fmt->interrupt_callback.callback = v->stop;
    fmt->interrupt_callback.opaque = v->opaque;
    AVDictionary *opts = NULL;
    av_dict_set(&opts, "format_whitelist", "mov,matroska", 0);
    /* Reaches only decoders avformat opens itself; the decoder pixmirror
     * opens is chosen in describe(), which refuses any other codec. */
    av_dict_set(&opts, "codec_whitelist", "h264,hevc", 0);
    av_dict_set(&opts, "probesize", "1048576", 0);
    int r = avformat_open_input(&fmt, NULL, NULL, &opts); /* frees fmt on failure */
    av_dict_free(&opts);
    if (r < 0)
        return r == AVERROR_EXIT ? PM_STOPPED : r == AVERROR(ENOMEM) ? PM_NOMEM : PM_NOT_VIDEO;
    v->fmt = fmt;
    return PM_OK;
}

static int open_decoder(pm_video *v, const AVStream *st, int64_t max_pixels) {
    const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
    if (!codec)
        return PM_CODEC;
    v->dec = avcodec_alloc_context3(codec);
    if (!v->dec)
        return PM_NOMEM;
    if (avcodec_parameters_to_context(v->dec, st->codecpar) < 0)
        return PM_NOT_VIDEO;
    v->dec->thread_count = 1;
    v->dec->opaque = v;
    v->dec->get_buffer2 = pm_get_buffer;
    v->dec->max_pixels = max_pixels;
    v->dec->pkt_timebase = st->time_base;
    if (avcodec_open2(v->dec, codec, NULL) < 0)
        return PM_NOT_VIDEO;
    v->frame = av_frame_alloc();
    v->next = av_frame_alloc();
    v->pkt = av_packet_alloc();
    return v->frame && v->next && v->pkt ? PM_OK : PM_NOMEM;
}

static int describe(pm_video *v, int64_t max_pixels) {
    int s = av_find_best_stream(v->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    if (s < 0)
        return PM_NOT_VIDEO;
    v->stream = s;
    AVStream *st = v->fmt->streams[s];
    for (unsigned i = 0; i < v->fmt->nb_streams; i++)
        if ((int)i != s)
            v->fmt->streams[i]->discard = AVDISCARD_ALL;
    const AVCodecParameters *par = st->codecpar;
    if (par->codec_id != AV_CODEC_ID_H264 && par->codec_id != AV_CODEC_ID_HEVC)
        return PM_CODEC;
    if (par->width <= 0 || par->height <= 0)
        return PM_NOT_VIDEO;
    if ((int64_t)par->width * par->height > max_pixels)
        return PM_TOO_LARGE;
    v->info.width = par->width;
    v->info.height = par->height;
    v->info.codec = par->codec_id == AV_CODEC_ID_H264 ? 1 : 2;
    v->info.rotation = rotation_of(st);
    if (v->fmt->duration != AV_NOPTS_VALUE && v->fmt->duration >= 0)
        v->info.duration_ms = v->fmt->duration / 1000;
    else if (st->duration != AV_NOPTS_VALUE && st->duration >= 0)
        v->info.duration_ms = av_rescale_q(st->duration, st->time_base, (AVRational){1, 1000});
    else
        v->info.duration_ms = -1;
    return open_decoder(v, st, max_pixels);
}

/* Open the container and the video stream's decoder; nothing is decoded yet. */
int pm_open(pm_video **out, void *opaque, pm_read_fn read, pm_seek_fn seek, pm_stop_fn stop,
            pm_grow_fn grow, int64_t max_pixels) {
    *out = NULL;
    pm_video *v = av_mallocz(sizeof(pm_video));
    if (!v)
        return PM_NOMEM;
    v->opaque = opaque;
    v->stop = stop;
    v->grow = grow;
    int r = open_input(v, read, seek);
    if (r == PM_OK)
        r = describe(v, max_pixels);
    if (r != PM_OK) {
        pm_close(v);
        return r;
    }
    *out = v;
    return PM_OK;
}

void pm_info_of(const pm_video *v, pm_info *info) { *info = v->info; }

/* The frames the decoder has ready. Returns 1 when the choice is made. */
static int take_frames(pm_video *v, int64_t target, int fast, int *have) {
    while (avcodec_receive_frame(v->dec, v->next) == 0) {
        int64_t ts = v->next->best_effort_timestamp;
        if (ts == AV_NOPTS_VALUE)
            ts = v->next->pts;
        if (fast || !*have || (ts != AV_NOPTS_VALUE && ts <= target)) {
            av_frame_unref(v->frame);
            av_frame_move_ref(v->frame, v->next);
            *have = 1;
            if (fast || ts == AV_NOPTS_VALUE || ts >= target)
                return 1;
        } else {
            av_frame_unref(v->next);
            return 1;
        }
    }
    return 0;
}

/*
 * Decode the frame shown at t_ms: the last frame at or before it (past the
 * end: the last frame), or with `fast` the keyframe at or before it. Seeks
 * to the keyframe at or before t first, so only one group of pictures is
 * read.
 */
/* The stream's end in its time base; AV_NOPTS_VALUE when unknown. */
static int64_t stream_end(const pm_video *v, const AVStream *st, int64_t start) {
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
        return start + st->duration;
    if (v->fmt->duration != AV_NOPTS_VALUE && v->fmt->duration > 0)
        return start + av_rescale_q(v->fmt->duration, AV_TIME_BASE_Q, st->time_base);
    return AV_NOPTS_VALUE;
}

/*
 * What the decoder may leave out of this packet. `fast`: everything but
 * keyframes. Else a picture no other picture refers to (a non-reference B
 * picture) whose successor is still at or before the target, and not near
 * the stream's end: it cannot be the frame shown at `target`, and nothing
 * else needs it decoded.
 */
static enum AVDiscard discard_for(const AVPacket *pkt, int64_t target, int64_t end, int fast) {
    if (fast)
        return AVDISCARD_NONKEY;
    if (pkt->pts == AV_NOPTS_VALUE || pkt->duration <= 0 || end == AV_NOPTS_VALUE)
        return AVDISCARD_DEFAULT;
    int64_t next = pkt->pts + pkt->duration;
    return next <= target && next + pkt->duration < end ? AVDISCARD_NONREF : AVDISCARD_DEFAULT;
}

int pm_decode(pm_video *v, int64_t t_ms, int fast) {
    AVStream *st = v->fmt->streams[v->stream];
    int64_t start = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
    int64_t target = av_rescale_q(t_ms, (AVRational){1, 1000}, st->time_base) + start;
    int64_t end = stream_end(v, st, start);
    if (t_ms > 0 && av_seek_frame(v->fmt, v->stream, target, AVSEEK_FLAG_BACKWARD) < 0 &&
        v->stop(v->opaque))
        return PM_STOPPED;
    int have = 0, flushing = 0;
    for (;;) {
        if (v->stop(v->opaque))
            return PM_STOPPED;
        if (!flushing) {
            int r = av_read_frame(v->fmt, v->pkt);
            if (r == AVERROR_EXIT || (r < 0 && v->stop(v->opaque)))
                return PM_STOPPED;
            if (r < 0) {
                flushing = 1; /* the end, or a broken tail: what was decoded counts */
                avcodec_send_packet(v->dec, NULL);
            } else if (v->pkt->stream_index == v->stream) {
                v->dec->skip_frame = discard_for(v->pkt, target, end, fast);
                avcodec_send_packet(v->dec, v->pkt); /* a broken packet is skipped */
                /* `fast`: the keyframe is all that is wanted; draining makes the
                 * decoder give it now rather than after its reorder delay. */
                if (fast && (v->pkt->flags & AV_PKT_FLAG_KEY)) {
                    flushing = 1;
                    avcodec_send_packet(v->dec, NULL);
                }
                av_packet_unref(v->pkt);
            } else {
                av_packet_unref(v->pkt);
                continue;
            }
        }
        if (take_frames(v, target, fast, &have))
            return PM_OK;
        if (flushing) /* a refused picture ends the run, not a short decode */
            return v->stop(v->opaque) ? PM_STOPPED : have ? PM_OK : PM_NO_FRAME;
    }
}

void pm_frame_size(const pm_video *v, int *width, int *height) {
    *width = v->frame->width;
    *height = v->frame->height;
}

/* The colour matrix of a frame that names none: BT.709 for HD, else BT.601. */
static int colorspace_of(const AVFrame *f) {
    switch (f->colorspace) {
    case AVCOL_SPC_BT709:
        return SWS_CS_ITU709;
    case AVCOL_SPC_BT2020_NCL:
    case AVCOL_SPC_BT2020_CL:
        return SWS_CS_BT2020;
    case AVCOL_SPC_SMPTE170M:
    case AVCOL_SPC_BT470BG:
        return SWS_CS_ITU601;
    default:
        return f->height >= 720 ? SWS_CS_ITU709 : SWS_CS_ITU601;
    }
}

/* The chosen frame as 8-bit RGB, `stride` bytes a row, at its own size. */
int pm_frame_rgb(const pm_video *v, uint8_t *dst, int stride) {
    const AVFrame *f = v->frame;
    struct SwsContext *sws = sws_getContext(f->width, f->height, f->format, f->width, f->height,
                                            AV_PIX_FMT_RGB24,
                                            SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT,
                                            NULL, NULL, NULL);
    if (!sws)
        return PM_NO_FRAME;
    const int *coefs = sws_getCoefficients(colorspace_of(f));
    int full_range = f->color_range == AVCOL_RANGE_JPEG;
    sws_setColorspaceDetails(sws, coefs, full_range, sws_getCoefficients(SWS_CS_DEFAULT), 1, 0,
                             1 << 16, 1 << 16);
    uint8_t *planes[4] = {dst, NULL, NULL, NULL};
    int strides[4] = {stride, 0, 0, 0};
    int rows = sws_scale(sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, planes,
                         strides);
    sws_freeContext(sws);
    return rows == f->height ? PM_OK : PM_NO_FRAME;
}

/* Every allocation FFmpeg makes is at most this large (process-wide; only
 * FFmpeg uses av_malloc), so a header that claims 10^9 samples fails its
 * allocation instead of taking the machine's memory. */
void pm_init(size_t max_alloc) {
    av_max_alloc(max_alloc);
    /* A hostile file makes FFmpeg log a line per broken packet; the caller
     * answers with its own message, and the log stays the server's. */
    av_log_set_level(AV_LOG_QUIET);
}
