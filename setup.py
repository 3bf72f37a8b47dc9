"""Install wdsr-basicsr: WDSR super-resolution networks as a BasicSR plugin."""

from os import path as osp

from setuptools import Command, find_packages, setup
from setuptools.command.build import build

PTH = 'wdsr_basicsr.pth'  # site.py runs it at start-up: wdsr_basicsr_startup.install() (BasicSR's entries find us)


class BuildPth(Command):
    """Put ``wdsr_basicsr.pth`` at the top of the wheel (site-packages), in a regular and an editable install."""

    description = 'install the start-up hook wdsr_basicsr.pth'
    user_options = []
    editable_mode = False  # set by setuptools' editable_wheel

    def initialize_options(self):
        self.build_lib = None
        self.outputs = []

    def finalize_options(self):
        self.set_undefined_options('build', ('build_lib', 'build_lib'))

    def run(self):
        # An editable wheel is assembled from the install tree, not build_lib.
        target = self.get_finalized_command('install').install_lib if self.editable_mode else self.build_lib
        self.mkpath(target)
        self.outputs = [self.copy_file(osp.join(osp.dirname(osp.abspath(__file__)), PTH), osp.join(target, PTH))[0]]

    def get_outputs(self):
        return self.outputs


build.sub_commands.append(('build_pth', None))

setup(
    name='wdsr-basicsr',
    version='0.1.0',
    description='WDSR-A/WDSR-B (wide activation super-resolution) and an RDN baseline for BasicSR',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_packages(include=['wdsr_basicsr', 'wdsr_basicsr.*']),
    py_modules=['wdsr_basicsr_startup', 'wdsr_basicsr_shim'],
    package_data={'wdsr_basicsr': ['utils/page/*.html', 'utils/page/*.css', 'utils/page/*.js', 'options/*.json']},
    cmdclass={'build_pth': BuildPth},
    install_requires=[
        'basicsr==1.4.2',
        'torch>=2.1',
        'torchvision>=0.16',
        'numpy',
        'opencv-python',
        'pillow',
        'lmdb',
        'pyyaml',
        'scikit-image',
        'tqdm',
    ],
    extras_require={
        'bench': ['matplotlib'],
        'export': ['onnx', 'onnxscript', 'onnxruntime', 'safetensors'],
        'deploy': ['onnx', 'onnxscript', 'onnxruntime', 'openvino'],
        'spandrel': ['spandrel>=0.4'],
        'wandb': ['wandb'],
        'test': [
            'pytest>=7',
            'jsonschema',
            'onnx',
            'onnxscript',
            'onnxruntime',
            'openvino',
            'safetensors',
            'spandrel>=0.4',
            'matplotlib',
            'playwright',
            'wandb',
            'ruff==0.17.6',
            'mypy==2.4.1',
        ],
    },
    entry_points={
        'console_scripts': [
            'wdsr-train = wdsr_basicsr.train:main',
            'wdsr-test = wdsr_basicsr.test:main',
            'wdsr-prepare-div2k = wdsr_basicsr.prepare.div2k:main',
            'wdsr-prepare-folder = wdsr_basicsr.prepare.folder:main',
            'wdsr-make-demo-data = wdsr_basicsr.prepare.demo:main',
            'wdsr-prepare-benchmarks = wdsr_basicsr.prepare.benchmarks:main',
            'wdsr-inference = wdsr_basicsr.inference:main',
            'wdsr-export = wdsr_basicsr.export:main',
            'wdsr-convert = wdsr_basicsr.convert:main',
            'wdsr-benchmark = wdsr_basicsr.benchmark.cli:main',
            'wdsr-compare = wdsr_basicsr.compare:main',
            'wdsr-cache = wdsr_basicsr.cache:main',
            'wdsr-reproduce = wdsr_basicsr.reproduce:main',
        ],
    },
)
