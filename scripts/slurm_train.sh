#!/bin/bash
# A training job that survives a shared slurm cluster: sbatch scripts/slurm_train.sh OPTION_FILE [train.py flags]
#SBATCH --job-name=wdsr
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --time=48:00:00
# 120 s before the time limit slurm sends SIGUSR1 to every task (without B:, which would signal this shell only);
# on preemption it sends SIGTERM. Either way every rank saves at the same iteration and exits 75, and the job
# goes back to the queue (--requeue allows it); the requeued job continues with --auto_resume.
#SBATCH --signal=USR1@120
#SBATCH --requeue

srun python wdsr_basicsr/train.py --launcher slurm --auto_resume -opt "$@"
status=$?
if [ "$status" -eq 75 ]; then
    scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"
