"""A local web app: segment an uploaded image with your own words, in the browser.

    python tools/webui.py configs/catseg_vitb.py [CHECKPOINT] [--port 7860]
    make webui [CHECKPOINT=...]

Open http://127.0.0.1:7860, upload an image, type classes as for ``tools/demo.py --vocab``
("sky, tree, person; human": commas between classes, semicolons between synonyms), pick the
inference mode and press Segment: the overlay with its legend, the classes present with their
shares, and the label PNG and JSON summary to download (those of ``tools/demo.py``). Without
CHECKPOINT the config's released weights are used, as by ``make demo``. A vocabulary may have up
to --max-classes classes (default 1000: A-847's fits; time and memory grow with the count). The
app listens on
127.0.0.1 only, loads nothing from the internet and sends no analytics. Needs the ``webui`` extra
(``pip install -e '.[webui]'``).

The same segmentation is the API endpoint ``segment``: (image, vocabulary[, mode]) -> (overlay,
JSON summary)::

    from gradio_client import Client, handle_file
    overlay, summary = Client('http://127.0.0.1:7860/').predict(
        handle_file('photo.jpg'), 'sky, tree, person', api_name='/segment')
"""
import argparse
import html
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import List, Optional, Tuple

import cat_seg  # noqa: F401  (first: registers CAT-Seg and applies cat_seg.compat)
from cat_seg.apis import CATSegInferencer, ImageFailure
from cat_seg.apis.inferencer import DEFAULT_TEXT_CACHE
from cat_seg.cli import add_inference_arguments, check_inference_arguments, main_guard
from cat_seg.vocabulary import parse_vocabulary

# Read when gradio builds an app; telemetry would be the app's only call to the internet.
os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'
try:
    import gradio as gr
except ImportError as missing:
    sys.exit(f"error: tools/webui.py needs Gradio ({missing}): pip install -e '.[webui]', or "
             'make webui')

MODES = {'slide': 'slide: crops at 640 px plus a global view (the benchmark protocol)',
         'whole': 'whole: one view of the whole image (faster)'}
TABLE_HEADERS = ['class', 'share', 'pixels']
API_DESCRIPTION = ('Segment an image over a vocabulary ("sky, tree, person; human"); mode "slide" '
                   '(default) or "whole". Returns the overlay and the JSON summary of '
                   'tools/demo.py.')
# A-847, the largest benchmark vocabulary, fits; a request's time and memory grow with the count.
DEFAULT_MAX_CLASSES = 1000


class SegmentationApp:
    """The web app's handlers around one ``CATSegInferencer`` (model and text cache shared by
    every request, which run one at a time).

    Args:
        config (str): Model config file.
        checkpoint (str): Our or an official checkpoint, a path or a URL.
        device (str): 'cpu' or 'cuda'. Defaults to 'cpu'.
        text_cache_dir (str, optional): Text embeddings kept between runs (see
            ``CATSegInferencer``). None keeps them in memory only.
        opacity (float): Weight of the class colours in the overlay. Defaults to 0.5.
        max_classes (int): Longer vocabularies are refused with a message. Defaults to
            ``DEFAULT_MAX_CLASSES``.
        precision (str): 'fp32', 'bf16' or 'fp16' (see ``CATSegInferencer``). Defaults to
            'fp32'.
    """

    def __init__(self, config: str, checkpoint: str, device: str = 'cpu',
                 text_cache_dir: Optional[str] = str(DEFAULT_TEXT_CACHE), opacity: float = 0.5,
                 max_classes: int = DEFAULT_MAX_CLASSES, precision: str = 'fp32'):
        self.inferencer = CATSegInferencer(config, checkpoint, device, 'slide', text_cache_dir,
                                           precision)
        # The model reads test_cfg at every prediction: one model serves both modes.
        slide = dict(self.inferencer.model.test_cfg)
        self.test_cfgs = {'slide': slide, 'whole': dict(slide, mode='whole')}
        self.opacity = opacity
        self.max_classes = max_classes
        self.outputs = tempfile.TemporaryDirectory(prefix='catseg_webui_')

    def segment(self, image: Optional[dict], vocabulary: Optional[str],
                mode: str = 'slide') -> Tuple[str, dict, str]:
        """Segment an uploaded image (gradio's file payload, ``path`` and ``orig_name``).

        Returns:
            tuple: The overlay PNG, the JSON summary of ``tools/demo.py`` and the directory
            holding them with the label PNG.

        Raises:
            gr.Error: No image, an unreadable one, an empty vocabulary, one over the class limit
                or an unknown mode; the page shows the message.
        """
        if not image or not image.get('path'):
            raise page_error('no image: upload one (JPEG, PNG, WebP, TIFF, BMP or GIF) first')
        if mode not in self.test_cfgs:
            raise page_error(f'mode {mode!r} is not one of {list(self.test_cfgs)}')
        classes = page_vocabulary(vocabulary or '')
        if len(classes) > self.max_classes:
            raise page_error(f'the vocabulary has {len(classes)} classes, more than the limit of '
                             f'{self.max_classes} this app was started with; name fewer, or '
                             f'restart it with --max-classes {len(classes)} (or more)')
        name = image.get('orig_name') or Path(image['path']).name
        if Path(image['path']).is_dir():   # segment_each would segment the images inside
            raise page_error(f'{name}: a directory, not an image file')
        out = Path(tempfile.mkdtemp(dir=self.outputs.name))
        self.inferencer.model.test_cfg = self.test_cfgs[mode]
        outcome = next(self.inferencer.segment_each(image['path'], classes, str(out),
                                                    self.opacity))
        if isinstance(outcome, ImageFailure):
            raise page_error(f'{name}: {outcome.reason}')
        stem = Path(image['path']).stem
        summary = json.loads((out / f'{stem}.json').read_text())
        return str(out / f'{stem}_overlay.png'), summary, str(out)

    @staticmethod
    def details(summary: dict, out: str) -> Tuple[List[list], List[str]]:
        """The table of classes present (name, share, pixels) and the files to download: the
        label PNG and the JSON summary (named as ``save_segmentation`` names them)."""
        rows = [[c['name'], f"{c['share']:.1%}", c['pixels']] for c in summary['present']]
        stem = Path(summary['image']).stem
        return rows, [str(Path(out) / f'{stem}_labels.png'), str(Path(out) / f'{stem}.json')]

    def blocks(self) -> gr.Blocks:
        """The page; its Segment button is also the API endpoint ``segment``."""
        with gr.Blocks(title='CAT-Seg', analytics_enabled=False,
                       delete_cache=(3600, 86400)) as app:
            gr.Markdown('# CAT-Seg: open-vocabulary segmentation\nUpload an image, name the '
                        'classes to look for, press **Segment**.')
            with gr.Row():
                with gr.Column():
                    image = gr.Image(label='Image', type='filepath', sources=['upload'],
                                     elem_id='image')
                    vocabulary = gr.Textbox(
                        label='Vocabulary', placeholder='sky, tree, person; human',
                        info='Classes separated by commas; synonyms of a class by semicolons; '
                        f'at most {self.max_classes} classes.',
                        elem_id='vocabulary')
                    mode = gr.Radio([(text, key) for key, text in MODES.items()], value='slide',
                                    label='Mode', elem_id='mode')
                    run = gr.Button('Segment', variant='primary', elem_id='segment')
                with gr.Column():
                    # No 'share' button: it posts to Hugging Face.
                    overlay = gr.Image(label='Overlay', type='filepath', interactive=False,
                                       buttons=['download', 'fullscreen'], elem_id='overlay')
                    table = gr.Dataframe(headers=TABLE_HEADERS, label='Classes present',
                                         interactive=False, elem_id='classes')
                    downloads = gr.File(label='Label map and summary', file_count='multiple',
                                        interactive=False, elem_id='downloads')
                    with gr.Accordion('JSON summary', open=False):
                        summary = gr.JSON(label='Summary')
            out = gr.State()
            # Raw upload payloads (preprocess=False): load_rgb reads the file and names what is
            # wrong with it, where gradio's own decoding would fail with a developer message.
            run.click(self.segment, [image, vocabulary, mode], [overlay, summary, out],
                      api_name='segment', api_description=API_DESCRIPTION, preprocess=False,
                      concurrency_limit=1).success(
                self.details, [summary, out], [table, downloads], api_visibility='private')
        return app


def page_vocabulary(text: str) -> list:
    """Classes in ``tools/demo.py --vocab`` syntax (``parse_vocabulary``); its warnings
    (duplicates removed) are shown on the page.

    Raises:
        gr.Error: The text names no class.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            classes = parse_vocabulary(text)
        except ValueError as error:
            raise page_error(str(error)) from error
    for warning in caught:
        gr.Warning(html.escape(str(warning.message), quote=False))
    return classes


def page_error(message: str) -> gr.Error:
    """An error the page shows as written: its toasts render HTML, and messages quote uploads'
    names and users' words."""
    return gr.Error(html.escape(message, quote=False), print_exception=False)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='model config, e.g. configs/catseg_vitb.py')
    parser.add_argument('checkpoint', nargs='?', help='our or an official checkpoint, a path or '
                        'a URL; default: the released weights of CONFIG (as make demo)')
    parser.add_argument('--port', type=int, default=7860, help='port on 127.0.0.1')
    parser.add_argument('--max-classes', type=int, default=DEFAULT_MAX_CLASSES,
                        help='longest vocabulary a request may have (default: %(default)s)')
    add_inference_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    with main_guard(args.debug):
        if args.max_classes < 1:
            raise ValueError(f'--max-classes {args.max_classes} must be a positive number of '
                             'classes')
        checkpoint = check_inference_arguments(args)
        app = SegmentationApp(args.config, checkpoint, args.device, args.text_cache or None,
                              args.opacity, args.max_classes, args.precision)
    app.blocks().launch(server_name='127.0.0.1', server_port=args.port, show_error=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
