"""Install wdsr-basicsr: WDSR super-resolution networks as a BasicSR plugin."""
from setuptools import find_packages, setup

setup(
    name='wdsr-basicsr',
    version='0.1.0',
    description='WDSR-A/WDSR-B (wide activation super-resolution) and an RDN baseline for BasicSR',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_packages(include=['wdsr_basicsr', 'wdsr_basicsr.*']),
    install_requires=[
        'basicsr==1.4.2',
        'torch>=2.1',
        'torchvision>=0.16',
        'numpy',
        'opencv-python',
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
        'test': ['pytest>=7', 'onnx', 'onnxscript', 'onnxruntime', 'openvino', 'safetensors', 'spandrel>=0.4',
                 'matplotlib'],
    },
    entry_points={
        'console_scripts': [
            'wdsr-train = wdsr_basicsr.train:main',
            'wdsr-test = wdsr_basicsr.test:main',
            'wdsr-prepare-div2k = wdsr_basicsr.data.prepare_div2k:main',
            'wdsr-make-demo-data = wdsr_basicsr.data.demo_data:main',
            'wdsr-prepare-benchmarks = wdsr_basicsr.data.prepare_benchmarks:main',
            'wdsr-inference = wdsr_basicsr.inference:main',
            'wdsr-export = wdsr_basicsr.export:main',
            'wdsr-convert = wdsr_basicsr.convert:main',
            'wdsr-benchmark = wdsr_basicsr.benchmark:main',
        ],
    },
)
