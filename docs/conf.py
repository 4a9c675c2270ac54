"""Sphinx configuration of the eat documentation site: `make docs` builds it into `_docs/`."""
import configparser
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / '_ext'))
os.environ.pop('MPLBACKEND', None)  # the tutorials' kernels inherit it: a non-inline backend would hide their figures
_ini = configparser.ConfigParser(delimiters=['='])
_ini.read(DOCS.parent / 'settings.ini', encoding='utf-8')
_cfg = _ini['DEFAULT']

project = 'eat'
author = _cfg['author']
copyright = _cfg['copyright']
release = version = _cfg['version']

extensions = [
    'myst_nb',
    'sphinx.ext.autodoc',
    'sphinx.ext.autosummary',
    'sphinx.ext.napoleon',
    'sphinx.ext.viewcode',
    'sphinx.ext.mathjax',
    'eat_docs',  # prepares generated/ (notebooks, report, example figure) and shows nbdev's parameter comments
]
exclude_patterns = ['_build', 'Thumbs.db', '.DS_Store', '**.ipynb_checkpoints', 'README.md']
templates_path = ['_templates']
eat_skip_flags = [f for f in _cfg.get('tst_flags', '').split() if f]  # nbdev's test flags (slow): not run here

# Notebooks: the library notebooks are stored without outputs and take minutes to run (make test runs them), so
# they are shown as source; the tutorials are executed while building, cached in .jupyter_cache beside the output
# folder (_docs/.jupyter_cache for `make docs`, which builds into _docs/html).
nb_execution_mode = 'cache'
nb_execution_excludepatterns = ['generated/nbs/[0-9]*.ipynb']
nb_execution_timeout = 180
nb_execution_raise_on_error = True  # a failing tutorial fails the build
nb_execution_show_tb = True
nb_merge_streams = True
nb_output_stderr = 'remove'  # kernel chatter (tqdm's IProgress warning); the tutorials print what matters
myst_enable_extensions = ['colon_fence', 'dollarmath', 'deflist']
myst_heading_anchors = 3
suppress_warnings = ['myst.header']  # notebooks and the generated report jump from # to ### headings

# API reference from the docstrings; nbdev's inline parameter comments are added by eat_docs.
autosummary_generate = True
autosummary_ignore_module_all = False
autodoc_member_order = 'bysource'
autodoc_typehints = 'signature'
autodoc_default_options = {'members': True}
# Internal references are checked strictly; types of torch, numpy, pandas, ... cannot be linked offline.
nitpicky = True
nitpick_ignore_regex = [(r'py:.*', r'^(?!eat\.).*'), (r'py:.*', r'eat\.(\w+\.)*_\w+')]  # private: not documented

html_theme = 'sphinx_book_theme'
html_title = 'eat: EAT for image aesthetics'
html_static_path = []
html_theme_options = {
    'repository_url': _cfg['git_url'],
    'use_repository_button': False,
    'show_toc_level': 2,
    'navigation_with_keys': False,
}
html_last_updated_fmt = None
